// Onebox-internal RPCs between the meta and replica servers (not part of Pegasus's wire API).
// No rDSN placeholders here: node addresses travel as "host:port" strings, mutations as
// packed binary (see loadgen/onebox/mutation.py), so these structs stay cheap to encode.
namespace py loadgen.onebox.gen.onebox

// One partition's membership as the meta sees it; learners are not in the public config.
struct partition_membership {
    1: i32 pidx;
    2: i64 ballot;
    3: string primary;
    4: list<string> secondaries;
    5: list<string> learners;
}

// What a replica server knows about one partition it hosts.
struct replica_report {
    1: i32 pidx;
    2: i64 ballot;
    3: i64 last_committed;
    4: i64 last_prepared;
}

struct beacon_request {
    1: string node;
    2: i64 incarnation;
    3: list<replica_report> reports;
}

// The meta's answer to a beacon; a replica renews its lease only from an accepted beacon.
struct beacon_response {
    1: bool accepted;
    2: list<partition_membership> configs;
}

// Meta -> replica: adopt these memberships (those with a ballot newer than the replica's).
struct config_proposal {
    1: list<partition_membership> configs;
}

struct empty_response {
}

// Primary -> meta: "remove" a member whose prepare failed, or "upgrade" a caught-up learner.
struct member_change_request {
    1: i32 pidx;
    2: i64 ballot;
    3: string requester;
    4: string node;
    5: string action;
}

struct member_change_response {
    1: string err;
    2: partition_membership config;
}

// Primary -> member: a batch of log entries (packed), the primary's commit point or, for a
// member too far behind the primary's log, one piece of the primary's checkpoint: bytes
// [checkpoint_offset, checkpoint_offset + len(checkpoint)) of a snapshot of checkpoint_total
// bytes at checkpoint_decree (checkpoint_total = 0: no checkpoint in this prepare).
struct prepare_request {
    1: i32 pidx;
    2: i64 ballot;
    3: string primary;
    4: i64 last_committed;
    5: binary entries;
    6: i64 checkpoint_decree;
    7: binary checkpoint;
    8: i64 checkpoint_offset;
    9: i64 checkpoint_total;
}

// err: "ok", "gap" (resend after `position`), "stale" (the member has a newer ballot) or
// "not_member". position = the last decree the member holds consistently with this primary;
// checkpoint_received = the bytes of the prepared checkpoint it holds so far (0 otherwise).
struct prepare_response {
    1: string err;
    2: i64 position;
    3: i64 ballot;
    4: i64 checkpoint_received;
}

// Supervisor -> replica: the node's counters, for the status document.
struct node_stats_request {
}

// dropped_expired: client requests dropped unanswered because they waited in the node's
// queue longer than their header's client_timeout (only with the spec's drop_expired on).
struct node_stats_response {
    1: i64 dropped_expired;
}
