// Request meta of header version 1 (Apache Pegasus src/rpc/request_meta.thrift).
namespace py loadgen.pegasus.gen.rpc

struct request_meta_v1 {
    1: optional i32 app_id;
    2: optional i32 partition_index;
    3: optional i32 client_timeout;
    4: optional i64 client_partition_hash;
    5: optional bool is_backup_request;
}
