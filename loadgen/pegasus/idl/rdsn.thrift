// rDSN "placeholder" types. Pegasus tags them as STRUCT on the wire but writes raw payloads
// (no field headers, no STOP), which Thrift IDL cannot express. The compiler never generates
// code for this file: `loadgen/pegasus/rdsn/ttypes.py` implements these four by hand and the
// generated code imports them through the namespace below.
namespace py loadgen.pegasus.rdsn

struct blob {}          // i32 length + bytes
struct error_code {}    // thrift string holding the error name
struct gpid {}          // i64 (partition_index << 32) | app_id
struct rpc_address {}   // i64 (ipv4 << 32) | (port << 16) | 1
