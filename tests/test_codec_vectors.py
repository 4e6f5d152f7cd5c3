"""The codec against the golden vectors produced with the official Python client's port."""

from __future__ import annotations

import functools

import pytest
from support.vectors import load_vectors

from loadgen.pegasus import codec, keys
from loadgen.pegasus.gen.replication import ttypes as replication
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.rdsn.ttypes import blob, error_code, gpid, rpc_address

pytestmark = pytest.mark.unit


def _b(s: str) -> blob:
    return blob(s.encode())


def build_args(args: dict):
    """Build the request argument object described by a vector's ``args``."""
    (kind, a), = args.items() if len(args) == 1 else [(None, args)]
    if kind == "update_request":
        return rrdb.update_request(key=blob(bytes.fromhex(a["key_hex"])), value=_b(a["value"]),
                                   expire_ts_seconds=a["expire_ts_seconds"])
    if kind == "key":
        return blob(bytes.fromhex(a["key_hex"]))
    if kind == "hash_key":
        return _b(a)
    if kind == "multi_put_request":
        return rrdb.multi_put_request(
            hash_key=_b(a["hash_key"]),
            kvs=[rrdb.key_value(key=_b(k), value=_b(v)) for k, v in a["kvs"]],
            expire_ts_seconds=a["expire_ts_seconds"])
    if kind == "multi_get_request":
        return rrdb.multi_get_request(
            hash_key=_b(a["hash_key"]), sort_keys=[_b(s) for s in a["sort_keys"]],
            max_kv_count=a["max_kv_count"], max_kv_size=a["max_kv_size"], no_value=a["no_value"])
    if kind == "multi_remove_request":
        return rrdb.multi_remove_request(hash_key=_b(a["hash_key"]),
                                         sort_keys=[_b(s) for s in a["sort_keys"]])
    if kind == "query_cfg_request":
        return replication.query_cfg_request(app_name=a["app_name"],
                                             partition_indices=a["partition_indices"])
    raise AssertionError(f"vector args kind {kind} not handled")


def build_result(result: dict):
    (kind, r), = result.items()
    common = dict(error=r.get("error"), app_id=r.get("app_id"),
                  partition_index=r.get("partition_index"), server=r.get("server"))
    if kind == "update_response":
        return rrdb.update_response(decree=r["decree"], **common)
    if kind == "read_response":
        return rrdb.read_response(value=_b(r["value"]), **common)
    if kind == "ttl_response":
        return rrdb.ttl_response(ttl_seconds=r["ttl_seconds"], **common)
    if kind == "count_response":
        return rrdb.count_response(count=r["count"], **common)
    if kind == "multi_remove_response":
        return rrdb.multi_remove_response(count=r["count"], decree=r["decree"], **common)
    if kind == "multi_get_response":
        return rrdb.multi_get_response(
            kvs=[rrdb.key_value(key=_b(k), value=_b(v)) for k, v in r["kvs"]], **common)
    if kind == "query_cfg_response":
        return replication.query_cfg_response(
            err=error_code(r["err"]), app_id=r["app_id"], partition_count=r["partition_count"],
            is_stateful=r["is_stateful"],
            partitions=[replication.partition_configuration(
                pid=gpid(p["pid"]["app_id"], p["pid"]["partition_index"]), ballot=p["ballot"],
                max_replica_count=p["max_replica_count"],
                primary=rpc_address.from_string(p["primary"]),
                secondaries=[rpc_address.from_string(s) for s in p["secondaries"]],
                last_drops=[rpc_address.from_string(s) for s in p["last_drops"]],
                last_committed_decree=p["last_committed_decree"]) for p in r["partitions"]])
    raise AssertionError(f"result kind {kind} not handled")


def _ids(items):
    return [v["name"] for v in items]


@functools.cache
def _vectors() -> dict:
    """The golden vectors, read once for parametrizing (fixtures use conftest's ``vectors``)."""
    return load_vectors()


def pytest_generate_tests(metafunc):
    data = _vectors()
    if "request_vector" in metafunc.fixturenames:
        metafunc.parametrize("request_vector", data["requests"], ids=_ids(data["requests"]))
    if "response_vector" in metafunc.fixturenames:
        metafunc.parametrize("response_vector", data["responses"], ids=_ids(data["responses"]))


def test_request_encodes_byte_for_byte(request_vector):
    v = request_vector
    h = v["header"]
    frame = codec.encode_request(v["rpc_name"], v["seqid"], build_args(v["args"]),
                                 app_id=h["app_id"], partition_index=h["partition_index"])
    assert frame.hex() == v["request_hex"]


def test_request_decodes_to_its_args(request_vector):
    v = request_vector
    frame = codec.decode_request(bytes.fromhex(v["request_hex"]))
    assert (frame.rpc_name, frame.seqid) == (v["rpc_name"], v["seqid"])
    assert (frame.app_id, frame.partition_index) == (v["header"]["app_id"], v["header"]["partition_index"])
    assert frame.args == build_args(v["args"])


def test_request_survives_header_v1(request_vector):
    v = request_vector
    h = v["header"]
    frame = codec.encode_request(v["rpc_name"], v["seqid"], build_args(v["args"]), app_id=h["app_id"],
                                 partition_index=h["partition_index"], client_timeout_ms=900,
                                 partition_hash=0xFEDCBA9876543210, hdr_version=1)
    assert frame[:8] == b"THFT\x00\x00\x00\x01"
    assert frame.endswith(bytes.fromhex(v["body_hex"]))
    got = codec.decode_request(frame)
    assert (got.hdr_version, got.app_id, got.partition_index) == (1, h["app_id"], h["partition_index"])
    assert (got.client_timeout_ms, got.partition_hash) == (900, 0xFEDCBA9876543210)
    assert got.args == build_args(v["args"])


def _rpc_name(v) -> str:
    return v["ack_name"][: -len("_ACK")]


def test_response_encodes_byte_for_byte(response_vector):
    v = response_vector
    result = build_result(v["result_struct"]) if v["error_name"] == "ERR_OK" else None
    frame = codec.encode_response(_rpc_name(v), v["seqid"], v["error_name"], result)
    assert frame.hex() == v["response_hex"]
    assert len(frame) == v["length_field"] == v["frame_len"]


def test_response_decodes_to_its_result(response_vector):
    v = response_vector
    got = codec.decode_response(bytes.fromhex(v["response_hex"]))
    assert (got.error, got.rpc_name, got.seqid) == (v["error_name"], _rpc_name(v), v["seqid"])
    if v["error_name"] == "ERR_OK":
        assert got.result == build_result(v["result_struct"])
    else:
        assert got.result is None


def test_crc64_cases(vectors):
    for case in vectors["crc64"]:
        data = bytes.fromhex(case["hash_key_hex"])
        crc = keys.crc64(data)
        assert crc == case["crc64_unsigned"], case["hash_key_repr"]
        assert crc == case["crc64_pypegasus3"] % (1 << 64)
        assert keys.partition_index(crc, 8) == case["pidx_8_unsigned"] == case["pidx_8_pypegasus3"]
        assert keys.partition_index(crc, 16) == case["pidx_16_unsigned"]


def test_crc64_reference_values():
    assert keys.crc64(b"123456789") == 0xAE8B14860A799888
    assert keys.crc64(b"hash_key") == 0x65641F36E9F6A96D
    assert keys._TABLE[1] == 0x7F6EF0C830358979


def test_empty_hash_key_hashes_the_sort_key(vectors):
    case = vectors["crc_empty_hash_key"]
    key = keys.make_key(bytes.fromhex(case["hash_key_hex"]), bytes.fromhex(case["sort_key_hex"]))
    assert key.hex() == case["key_blob_hex"]
    assert keys.key_hash(key) == int(case["hash_unsigned_hex"], 16)
    assert keys.partition_index(keys.key_hash(key), 8) == case["pidx_8_pypegasus3"]


def test_key_blobs(vectors):
    for case in vectors["key_blobs"]:
        h, s = bytes.fromhex(case["hash_key_hex"]), bytes.fromhex(case["sort_key_hex"])
        assert keys.make_key(h, s).hex() == case["key_blob_hex"]
        assert keys.split_key(bytes.fromhex(case["key_blob_hex"])) == (h, s)


def test_rpc_address_and_gpid_examples(vectors):
    for case in vectors["rpc_address_examples"]:
        addr = rpc_address.from_string(case["host_port"])
        assert codec.encode_struct(addr).hex() == case["wire_i64_hex"]
        assert str(addr) == case["host_port"]
    for case in vectors["gpid_examples"]:
        g = gpid(case["app_id"], case["partition_index"])
        assert codec.encode_struct(g).hex() == case["wire_i64_hex"]
        assert g.to_i64() == case["i64"]


def test_partition_count_must_be_power_of_two():
    for bad in (0, -4, 6, 12):
        with pytest.raises(ValueError, match="power of two"):
            keys.check_partition_count(bad)
    for good in (1, 2, 8, 1024):
        keys.check_partition_count(good)
    assert keys.partition_index(123, 8) == 123 % 8 == 3


def test_partition_hash_of_key_parts_matches_the_key_blob(vectors):
    for case in vectors["key_blobs"]:
        h, s = bytes.fromhex(case["hash_key_hex"]), bytes.fromhex(case["sort_key_hex"])
        assert keys.partition_hash(h, s) == keys.key_hash(keys.make_key(h, s))
    case = vectors["crc_empty_hash_key"]
    assert keys.partition_hash(b"", bytes.fromhex(case["sort_key_hex"])) == \
        int(case["hash_unsigned_hex"], 16)


def test_signed64_is_the_thrift_i64_of_an_unsigned_value():
    from loadgen.pegasus.rdsn.ttypes import signed64

    assert signed64(0) == 0 and signed64(2**63 - 1) == 2**63 - 1
    assert signed64(2**63) == -(2**63) and signed64(2**64 - 1) == -1
    assert signed64(2**64 + 5) == 5  # only the low 64 bits count
