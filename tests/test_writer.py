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


# ------------------------------------------------------------------ HubWriter (the client's)

def _pair():
    import socket

    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


class CountingSend:
    def __init__(self, sock):
        self.sock, self.sends = sock, []

    def send(self, data: bytes) -> int:
        self.sends.append(len(data))
        return self.sock.send(data)

    def fileno(self) -> int:
        return self.sock.fileno()


def read_all(sock, n: int) -> bytes:
    got = b""
    while len(got) < n:
        gevent.sleep(0.001)
        try:
            got += sock.recv(1 << 20, __import__("socket").MSG_DONTWAIT)
        except BlockingIOError:
            pass
    return got


def test_hub_writer_sends_a_turns_first_frame_at_once_and_the_rest_in_one_send():
    from loadgen.pegasus.writer import HubWriter

    a, b = _pair()
    counting, errors = CountingSend(a), []
    writer = HubWriter(counting, errors.append)
    for frame in (b"a", b"bb", b"ccc"):
        writer.send(frame)
    assert counting.sends == [1]         # the first at once, the others wait for the loop
    assert read_all(b, 6) == b"abbccc" and counting.sends == [1, 5] and errors == []
    writer.send(b"dddd")                 # a later turn: at once again
    assert counting.sends == [1, 5, 4] and read_all(b, 4) == b"dddd"
    writer.close()
    a.close(), b.close()


def test_hub_writer_sends_what_the_kernel_did_not_take_once_writable():
    from loadgen.pegasus.writer import HubWriter

    a, b = _pair()
    errors = []
    writer = HubWriter(a, errors.append)
    big = bytes(range(256)) * 40_000                 # 10 MB: far beyond the socket buffers
    writer.send(big)
    writer.send(b"tail")
    assert read_all(b, len(big) + 4) == big + b"tail" and errors == []
    writer.close()
    a.close(), b.close()


def test_hub_writer_reports_a_failed_send_once_and_drops_later_frames():
    from loadgen.pegasus.writer import HubWriter

    a, b = _pair()
    b.close()
    errors = []
    writer = HubWriter(a, errors.append)
    writer.send(b"x")
    assert errors == []   # reported from the event loop, not from the sending greenlet
    gevent.sleep(0.01)
    writer.send(b"y")
    gevent.sleep(0.01)
    assert len(errors) == 1 and isinstance(errors[0], OSError) and writer.dead
    a.close()


def test_hub_writer_close_drops_unsent_frames():
    from loadgen.pegasus.writer import HubWriter

    a, b = _pair()
    errors = []
    writer = HubWriter(a, errors.append)
    writer.send(b"x")        # sent at once
    writer.send(b"queued")   # waits for the loop turn
    writer.close()
    writer.send(b"late")
    gevent.sleep(0.01)
    b.setblocking(False)
    assert b.recv(10) == b"x"
    with pytest.raises(BlockingIOError):
        b.recv(10)
    assert errors == [] and writer.dead
    a.close(), b.close()
