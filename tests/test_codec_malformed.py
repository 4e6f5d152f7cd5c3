"""Malformed frames: every decoder fails with ProtocolError and never sizes a buffer from a lie."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

from loadgen.errors import ProtocolError
from loadgen.pegasus import codec, keys
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.rdsn.ttypes import blob

pytestmark = pytest.mark.unit

TWO_GIB = 2 ** 31
# Far below the claimed lengths: proves nothing was allocated for them.
MAX_PEAK_BYTES = 8 * 1024 * 1024


def put_request(seqid: int = 7) -> bytes:
    args = rrdb.update_request(key=blob(keys.make_key(b"h", b"s")), value=blob(b"v"),
                               expire_ts_seconds=0)
    return codec.encode_request(codec.RPC_PUT, seqid, args, app_id=1, partition_index=0)


def put_reply(seqid: int = 7, error: str = "ERR_OK") -> bytes:
    result = rrdb.update_response(error=0, app_id=1, partition_index=0, decree=1, server="x")
    return codec.encode_response(codec.RPC_PUT, seqid, error, result if error == "ERR_OK" else None)


def raw_reply(error_name: bytes, body: bytes = b"") -> bytes:
    """A reply frame built by hand, so it can carry names the encoder would not."""
    ack = (codec.RPC_PUT + "_ACK").encode()
    payload = (struct.pack(">i", len(error_name)) + error_name + struct.pack(">I", 0x80010002)
               + struct.pack(">i", len(ack)) + ack + struct.pack(">i", 7) + body)
    return struct.pack(">I", len(payload) + 4) + payload


def assert_small_peak(fn) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK_BYTES, f"peak {peak} bytes: a claimed length was allocated"


def test_valid_frames_decode_as_baseline():
    # The malformed cases below are mutations of these frames.
    assert codec.decode_request(put_request()).rpc_name == codec.RPC_PUT
    reply = codec.decode_response(put_reply())
    assert (reply.error, reply.seqid, reply.result.decree) == ("ERR_OK", 7, 1)


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_truncated_request_is_rejected(cut):
    with pytest.raises(ProtocolError, match="truncated"):
        codec.decode_request(put_request()[:-cut])


@pytest.mark.parametrize("cut", [1, 10, 30])
def test_truncated_reply_is_rejected(cut):
    with pytest.raises(ProtocolError):
        codec.decode_response(put_reply()[:-cut])


def test_truncated_frame_waits_in_splitter_then_completes():
    frame = put_reply()
    splitter = codec.FrameSplitter("response")
    assert splitter.feed(frame[:10]) == []
    assert splitter.feed(frame[10:]) == [frame]


def test_wrong_magic_is_rejected_by_decoder_and_splitter():
    bad = b"HTTP" + put_request()[4:]
    with pytest.raises(ProtocolError, match="magic"):
        codec.decode_request(bad)
    with pytest.raises(ProtocolError, match="magic"):
        codec.FrameSplitter("request").feed(bad)


def test_two_gib_reply_length_rejected_without_allocating():
    header = struct.pack(">I", TWO_GIB) + b"\x00" * 12
    assert_small_peak(lambda: codec.FrameSplitter("response").feed(header))


def test_two_gib_v0_request_body_rejected_without_allocating():
    frame = bytearray(put_request())
    struct.pack_into(">I", frame, 16, TWO_GIB)  # body_length
    assert_small_peak(lambda: codec.FrameSplitter("request").feed(bytes(frame)))
    assert_small_peak(lambda: codec.decode_request(bytes(frame)))


def test_two_gib_v1_meta_length_rejected_without_allocating():
    frame = bytearray(codec.encode_request(codec.RPC_GET, 1, blob(b"k"), hdr_version=1))
    struct.pack_into(">I", frame, 8, TWO_GIB)  # meta_length
    assert_small_peak(lambda: codec.FrameSplitter("request").feed(bytes(frame)))


def test_two_gib_string_length_inside_reply_rejected_without_allocating():
    # The frame is small but its error-name string claims 2 GiB.
    frame = struct.pack(">I", 16) + struct.pack(">i", TWO_GIB - 1) + b"ERR_OK\x00\x00"
    assert_small_peak(lambda: codec.decode_response(frame))


def test_unknown_error_name_is_rejected():
    with pytest.raises(ProtocolError, match="unknown error name"):
        codec.decode_response(raw_reply(b"ERR_NOT_A_REAL_ERROR"))


def test_known_error_name_without_body_decodes():
    # Same hand-built frame with a real name: the rejection above is about the name only.
    assert codec.decode_response(raw_reply(b"ERR_INVALID_STATE")).error == "ERR_INVALID_STATE"


def test_ok_reply_with_wrong_field_type_is_rejected():
    body = bytes([8, 0, 0]) + struct.pack(">i", 5) + b"\x00"  # field 0 as I32, not STRUCT
    with pytest.raises(ProtocolError, match="without a result"):
        codec.decode_response(raw_reply(b"ERR_OK", body))


def test_request_with_wrong_argument_type_is_rejected():
    frame = bytearray(put_request())
    args_at = frame.index(bytes([12, 0, 1]), codec.HEADER_V0_BYTES)
    frame[args_at] = 8  # the args field claims I32 instead of STRUCT
    with pytest.raises(ProtocolError):
        codec.decode_request(bytes(frame))


def test_reply_with_call_message_type_is_rejected():
    frame = bytearray(put_reply())
    at = frame.index(struct.pack(">I", 0x80010002))
    frame[at + 3] = 1  # CALL instead of REPLY
    with pytest.raises(ProtocolError, match="message type"):
        codec.decode_response(bytes(frame))


def test_garbage_body_is_rejected():
    frame = put_reply()
    garbage = frame[:40] + b"\xff" * (len(frame) - 40)
    with pytest.raises(ProtocolError):
        codec.decode_response(garbage)
