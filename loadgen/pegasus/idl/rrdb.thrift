// Replica-server storage RPC structs we use (subset of Apache Pegasus idl/rrdb.thrift).
include "rdsn.thrift"
namespace py loadgen.pegasus.gen.rrdb

struct update_request {
    1: rdsn.blob key;
    2: rdsn.blob value;
    3: i32 expire_ts_seconds;
}

struct update_response {
    1: i32 error;
    2: i32 app_id;
    3: i32 partition_index;
    4: i64 decree;
    5: string server;
}

struct read_response {
    1: i32 error;
    2: rdsn.blob value;
    3: i32 app_id;
    4: i32 partition_index;
    6: string server;
}

struct ttl_response {
    1: i32 error;
    2: i32 ttl_seconds;
    3: i32 app_id;
    4: i32 partition_index;
    6: string server;
}

struct count_response {
    1: i32 error;
    2: i64 count;
    3: i32 app_id;
    4: i32 partition_index;
    6: string server;
}

struct key_value {
    1: rdsn.blob key;
    2: rdsn.blob value;
    3: optional i32 expire_ts_seconds;
}

struct multi_put_request {
    1: rdsn.blob hash_key;
    2: list<key_value> kvs;
    3: i32 expire_ts_seconds;
}

struct multi_remove_request {
    1: rdsn.blob hash_key;
    2: list<rdsn.blob> sort_keys;
    3: optional i64 max_count;
}

struct multi_remove_response {
    1: i32 error;
    2: i64 count;
    3: i32 app_id;
    4: i32 partition_index;
    5: i64 decree;
    6: string server;
}

struct multi_get_request {
    1: rdsn.blob hash_key;
    2: list<rdsn.blob> sort_keys;
    3: i32 max_kv_count;
    4: i32 max_kv_size;
    5: bool no_value;
    6: optional rdsn.blob start_sortkey;
    7: optional rdsn.blob stop_sortkey;
    8: optional bool start_inclusive;
    9: optional bool stop_inclusive;
    10: optional i32 sort_key_filter_type;
    11: optional rdsn.blob sort_key_filter_pattern;
    12: optional bool reverse;
}

struct multi_get_response {
    1: i32 error;
    2: list<key_value> kvs;
    3: i32 app_id;
    4: i32 partition_index;
    6: string server;
}
