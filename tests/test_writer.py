"""FrameWriter: coalesced sends, one error report, nothing sent after close."""

from __future__ import annotations

import gevent
import pytest

from loadgen.pegasus.writer import FrameWriter

pytestmark = pytest.mark.unit


class FakeSocket:
    def __init__(self, fail: bool = False):
        self.sent: list[bytes] = []
        self.fail = fail

    def sendall(self, data: bytes) -> None:
        gevent.sleep(0.01)  # a send in progress: frames queued meanwhile must coalesce
        if self.fail:
            raise BrokenPipeError("peer gone")
        self.sent.append(data)


def test_frames_queued_during_a_send_go_out_together():
    sock, errors = FakeSocket(), []
    writer = FrameWriter(sock, errors.append)
    writer.send(b"a")
    gevent.sleep(0.001)  # the writer is now inside sendall(b"a")
    for frame in (b"b", b"c", b"d"):
        writer.send(frame)
    gevent.sleep(0.05)
    assert sock.sent == [b"a", b"bcd"] and errors == []
    writer.close()


def test_a_failed_send_is_reported_once_and_later_frames_are_dropped():
    sock, errors = FakeSocket(fail=True), []
    writer = FrameWriter(sock, errors.append)
    writer.send(b"a")
    gevent.sleep(0.05)
    writer.send(b"b")
    gevent.sleep(0.05)
    assert len(errors) == 1 and isinstance(errors[0], BrokenPipeError)
    assert writer.closed and writer.dead


def test_close_drops_unsent_frames_and_reports_nothing():
    sock, errors = FakeSocket(), []
    writer = FrameWriter(sock, errors.append)
    writer.send(b"x")  # queued, and the writer woken, but it has not run yet
    writer.close()
    writer.send(b"late")
    gevent.sleep(0.05)
    assert sock.sent == [] and errors == [] and writer.dead
