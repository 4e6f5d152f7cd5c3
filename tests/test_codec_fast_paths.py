"""The codec's fast paths give exactly what its general paths give.

Decoding: an ERR_OK reply's header is read in a few steps, and a flat result struct
(``update_response``: every put's reply) laid out as the generated code writes it is read in
a few ``unpack_from`` calls. The same frames are decoded both ways (the general way with the
fast paths switched off): the same result or, for a malformed frame, a ProtocolError both
ways. Encoding: a put's argument is built in one join; the bytes
must be the generated code's. Splitting: a read holding exactly one frame is passed on as it
is; any cut of a stream gives the same frames.
"""

from __future__ import annotations

import random
import struct

import pytest
from support.vectors import load_vectors

from loadgen.errors import ProtocolError
from loadgen.pegasus import codec
from loadgen.pegasus.gen.replication import ttypes as replication
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.rdsn.ttypes import blob

pytestmark = pytest.mark.unit

FLAT_RPCS = {codec.RPC_PUT, codec.RPC_MULTI_PUT, codec.RPC_REMOVE, codec.RPC_MULTI_REMOVE,
                    codec.RPC_TTL, codec.RPC_SORTKEY_COUNT}
I32, I64 = (-2 ** 31, 2 ** 31 - 1), (-2 ** 63, 2 ** 63 - 1)


def plain(frame: bytes, monkeypatch):
    """Decode with the fast paths switched off: a result or the ProtocolError."""
    with monkeypatch.context() as m:
        m.setattr(codec, "FLAT_RESULTS", False)
        m.setattr(codec, "_OK_REPLY", b"\xff")   # no reply starts so: the usual-reply step is off
        return outcome(frame)


def outcome(frame: bytes):
    try:
        return codec.decode_response(frame)
    except ProtocolError as exc:
        return ProtocolError


def test_only_flat_results_have_a_fast_reader():
    client_rpcs = {value for name, value in vars(codec).items() if name.startswith("RPC_")}
    taken = {name for name in client_rpcs if codec.flat_plan(codec._RPCS[name].result)}
    assert taken == FLAT_RPCS   # (the onebox registers RPCs of its own: not counted here)
    # blob (read_response), key_value lists of blobs, gpid and rpc_address (the meta's answer)
    for cls in (rrdb.read_response, rrdb.multi_get_response, replication.query_cfg_response,
                replication.partition_configuration):
        assert not codec.flat_plan(cls)


def random_result(rng: random.Random, cls: type):
    """An instance of ``cls`` with every field random or absent (None)."""
    value = cls()
    for field in cls.thrift_spec:
        if field is None or rng.random() < 0.15:
            continue
        _, ttype, name = field[:3]
        if ttype == 8:     # i32
            v = rng.choice([rng.randint(*I32), 0, 1, -1, *I32])
        elif ttype == 10:  # i64
            v = rng.choice([rng.randint(*I64), 0, -1, *I64])
        elif ttype == 6:   # i16
            v = rng.randint(-2 ** 15, 2 ** 15 - 1)
        elif ttype == 3:   # byte
            v = rng.randint(-128, 127)
        elif ttype == 2:   # bool
            v = rng.random() < 0.5
        elif ttype == 4:   # double
            v = rng.choice([rng.uniform(-1e9, 1e9), 0.0, float("inf")])
        else:              # string (UTF-8)
            v = "".join(rng.choice("ab:.0é漢\U0001f600") for _ in range(rng.randint(0, 20)))
        setattr(value, name, v)
    return value


def all_flat_rpcs() -> list[str]:
    import loadgen.onebox.internal_rpc  # noqa: F401 - registers the onebox's RPCs too

    return sorted(name for name, spec in codec._RPCS.items() if codec.flat_plan(spec.result))


@pytest.mark.parametrize("rpc", all_flat_rpcs())
def test_random_results_decode_alike(rpc, monkeypatch):
    rng = random.Random(rpc)
    cls = codec._RPCS[rpc].result
    for seqid in range(300):
        frame = codec.encode_response(rpc, seqid, "ERR_OK", random_result(rng, cls))
        fast = codec.decode_response(frame)
        assert fast == plain(frame, monkeypatch)
        assert fast.result == codec.decode_response(frame).result


def test_the_golden_vectors_decode_alike(monkeypatch):
    for v in load_vectors()["responses"]:
        frame = bytes.fromhex(v["response_hex"])
        assert outcome(frame) == plain(frame, monkeypatch), v.get("name")


def body_frame(rpc: str, body: bytes) -> bytes:
    """A reply frame with ``body`` after the message header, as a server might lay it out."""
    ack = (rpc + "_ACK").encode()
    payload = (struct.pack(">i", 6) + b"ERR_OK" + struct.pack(">I", 0x80010002)
               + struct.pack(">i", len(ack)) + ack + struct.pack(">i", 9) + body)
    return struct.pack(">I", len(payload) + 4) + payload


def test_other_layouts_and_malformed_bodies_decode_alike(monkeypatch):
    result = codec.encode_struct(rrdb.update_response(error=1, app_id=2, partition_index=3,
                                                      decree=4, server="s"))
    layouts = [
        b"\x0c\x00\x00" + result + b"\x00",                      # the usual one
        b"\x0c\x00\x00" + result + b"\x08\x00\x07" + b"\x00" * 4 + b"\x00",  # a field after it
        b"\x08\x00\x07" + b"\x00" * 4 + b"\x0c\x00\x00" + result + b"\x00",  # a field before it
        b"\x0c\x00\x01" + result + b"\x00",                      # wrong field id
        b"\x0b\x00\x00" + b"\x00\x00\x00\x01x" + b"\x00",         # wrong field type
        b"\x00",                                                  # no result
        b"\x0c\x00\x00" + result,                                 # no STOP after the result
        b"\x0c\x00\x00" + result[:-1],                            # truncated result
        b"\x0c\x00\x00\x0b\x00\x05\x7f\xff\xff\xff" + b"\x00",     # a 2 GiB string
        b"\x0c\x00\x00\x0b\x00\x05\x00\x00\x00\x02\xff\xfe\x00\x00",  # a string not UTF-8
        b"\x0c\x00\x00\x63\x00\x05\x00\x00",                      # an unknown field type
    ]
    for body in layouts:
        frame = body_frame(codec.RPC_PUT, body)
        assert outcome(frame) == plain(frame, monkeypatch), body.hex()
    rng = random.Random(7)
    usual = layouts[0]
    for _ in range(2000):   # corrupt one to three bytes of the usual body, or cut it short
        body = bytearray(usual)
        for _ in range(rng.randint(1, 3)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        if rng.random() < 0.2:
            body = body[:rng.randrange(len(body))]
        frame = body_frame(codec.RPC_PUT, bytes(body))
        assert outcome(frame) == plain(frame, monkeypatch), bytes(body).hex()


def test_reply_headers_decode_alike(monkeypatch):
    """Every error name, RPC and seqid, and corrupted or cut headers, both ways."""
    rng = random.Random(11)
    results = {codec.RPC_PUT: rrdb.update_response(error=0, app_id=1, partition_index=2,
                                                   decree=3, server="s"),
               codec.RPC_GET: rrdb.read_response(error=0, value=blob(b"v"), app_id=1,
                                                 partition_index=2, server="s"),
               codec.RPC_QUERY_CONFIG: replication.query_cfg_response(app_id=1)}
    frames = []
    for rpc, result in results.items():
        for error in ("ERR_OK", "ERR_INVALID_STATE", "ERR_OBJECT_NOT_FOUND"):
            for seqid in (0, 1, 2 ** 31 - 1, -5):
                frames.append(codec.encode_response(rpc, seqid, error,
                                                    result if error == "ERR_OK" else None))
    for frame in list(frames):
        assert outcome(frame) == plain(frame, monkeypatch)
        for _ in range(40):
            bad = bytearray(frame)
            at = rng.randrange(min(len(bad), 60))
            bad[at] = rng.randrange(256)
            frames.append(bytes(bad))
            frames.append(frame[:rng.randrange(len(frame))])
    for frame in frames:
        assert outcome(frame) == plain(frame, monkeypatch), frame.hex()


def test_put_arguments_encode_as_the_generated_code_writes_them():
    rng = random.Random(5)
    for _ in range(500):
        key, value = rng.randbytes(rng.randint(0, 300)), rng.randbytes(rng.choice([0, 1, 100, 5000]))
        expire = rng.choice([0, 2 ** 31 - 1, -2 ** 31, rng.randint(0, 2 ** 31 - 1),
                             rng.randint(-2 ** 31, 0)])
        generated = codec.encode_struct(rrdb.update_request(
            key=blob(key), value=blob(value), expire_ts_seconds=expire))
        fast = codec.put_args(key, value, expire)
        assert fast == generated and type(fast) is codec.EncodedArgs
        header = {"app_id": rng.randint(0, 9), "partition_index": rng.randint(0, 7),
                  "client_timeout_ms": rng.randint(0, 5000), "partition_hash": rng.getrandbits(64)}
        # The frame around it is the one the generated argument gets.
        assert codec.encode_request(codec.RPC_PUT, 9, fast, **header) == codec.encode_request(
            codec.RPC_PUT, 9, rrdb.update_request(key=blob(key), value=blob(value),
                                                  expire_ts_seconds=expire), **header)


@pytest.mark.parametrize("expire", [2 ** 31, -2 ** 31 - 1])
def test_a_put_expire_time_outside_i32_is_refused_by_name(expire):
    with pytest.raises(ValueError, match="expire_ts_seconds"):
        codec.put_args(b"k", b"v", expire)


def test_the_put_vectors_take_the_fast_encoding():
    """So test_codec_vectors.py's byte-for-byte check of the put vectors covers it."""
    puts = [v["args"]["update_request"] for v in load_vectors()["requests"]
            if "update_request" in v["args"]]
    assert len(puts) >= 2
    for a in puts:
        key, value = bytes.fromhex(a["key_hex"]), a["value"].encode()
        args = rrdb.update_request(key=blob(key), value=blob(value),
                                   expire_ts_seconds=a["expire_ts_seconds"])
        assert codec.put_args(key, value, a["expire_ts_seconds"]) == codec.encode_struct(args)


def reference_split(stream: bytes) -> list[bytes]:
    frames, at = [], 0
    while at + 4 <= len(stream):
        n = struct.unpack_from(">I", stream, at)[0]
        if at + n > len(stream):
            break
        frames.append(stream[at:at + n])
        at += n
    return frames


def test_any_cut_of_a_reply_stream_gives_the_same_frames():
    rng = random.Random(3)
    result = rrdb.update_response(error=0, app_id=1, partition_index=2, decree=3, server="s")
    replies = [codec.encode_response(codec.RPC_PUT, i, "ERR_OK", result) for i in range(50)]
    stream = b"".join(replies)
    for _ in range(200):
        splitter, got, at = codec.FrameSplitter("response"), [], 0
        while at < len(stream):
            n = rng.choice([1, 3, len(replies[0]), 2 * len(replies[0]), rng.randint(1, 400)])
            got += splitter.feed(stream[at:at + n])
            at += n
        assert got == reference_split(stream) and splitter.pending_bytes == 0
        assert all(type(f) is bytes for f in got)
    one = replies[0]
    assert codec.FrameSplitter("response").feed(one)[0] is one   # passed on, not copied


def test_garbage_is_kept_as_before_when_the_splitter_rejects_it():
    splitter = codec.FrameSplitter("request")
    with pytest.raises(ProtocolError, match="magic"):
        splitter.feed(b"XXXX" + bytes(60))
    assert splitter.pending_bytes == 64


def test_a_put_reply_takes_both_fast_paths(monkeypatch):
    result = rrdb.update_response(error=0, app_id=1, partition_index=2, decree=3, server="s")
    frame = codec.encode_response(codec.RPC_PUT, 7, "ERR_OK", result)

    def general(*_args):
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(codec, "_reply_header", general)
    monkeypatch.setattr(codec, "_Reader", general)
    assert codec.decode_response(frame) == codec.ResponseFrame("ERR_OK", codec.RPC_PUT, 7, result)
