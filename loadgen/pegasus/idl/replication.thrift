// Meta-server partition-config query (subset of Apache Pegasus idl/dsn.layer2.thrift).
// partition_configuration stops at field 7: older clients cannot skip the 2.6+ host_port fields.
include "rdsn.thrift"
namespace py loadgen.pegasus.gen.replication

struct partition_configuration {
    1: rdsn.gpid pid;
    2: i64 ballot;
    3: i32 max_replica_count;
    4: rdsn.rpc_address primary;
    5: list<rdsn.rpc_address> secondaries;
    6: list<rdsn.rpc_address> last_drops;
    7: i64 last_committed_decree;
}

struct query_cfg_request {
    1: string app_name;
    2: list<i32> partition_indices;
}

struct query_cfg_response {
    1: rdsn.error_code err;
    2: i32 app_id;
    3: i32 partition_count;
    4: bool is_stateful;
    5: list<partition_configuration> partitions;
}
