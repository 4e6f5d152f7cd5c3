"""Registry of Pegasus error names: what each means to a client.

Error names travel as strings. ``KNOWN`` is the table the official Python client knows (value =
its enum number); ``SERVER_ONLY`` are names real servers may send that it does not know. Both
decode (:func:`is_decodable`); the onebox sends only ``KNOWN`` names. ``ERR_SESSION_RESET`` is
client-only, and ``STORAGE_<status>`` names a storage status in an ERR_OK reply
(:class:`~loadgen.errors.StorageError`). Each name carries three facts the policies, recorders
and reports share:

* ``definite``  — the op certainly did not apply (``fail``); otherwise a write is ``unknown``;
* ``retriable`` — the failover policy retries it within the op deadline;
* ``refresh``   — the failover policy refreshes the partition config before retrying.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import StorageError

_NAMES = (
    "ERR_OK ERR_UNKNOWN ERR_REPLICATION_FAILURE ERR_APP_EXIST ERR_APP_NOT_EXIST ERR_BUSY_CREATING "
    "ERR_BUSY_DROPPING ERR_EXPIRED ERR_LOCK_ALREADY_EXIST ERR_HOLD_BY_OTHERS ERR_RECURSIVE_LOCK "
    "ERR_NO_OWNER ERR_NODE_ALREADY_EXIST ERR_INCONSISTENT_STATE ERR_ARRAY_INDEX_OUT_OF_RANGE "
    "ERR_SERVICE_NOT_FOUND ERR_SERVICE_ALREADY_RUNNING ERR_IO_PENDING ERR_TIMEOUT "
    "ERR_SERVICE_NOT_ACTIVE ERR_BUSY ERR_NETWORK_INIT_FAILED ERR_FORWARD_TO_OTHERS "
    "ERR_OBJECT_NOT_FOUND ERR_HANDLER_NOT_FOUND ERR_LEARN_FILE_FAILED ERR_GET_LEARN_STATE_FAILED "
    "ERR_INVALID_VERSION ERR_INVALID_PARAMETERS ERR_CAPACITY_EXCEEDED ERR_INVALID_STATE "
    "ERR_INACTIVE_STATE ERR_NOT_ENOUGH_MEMBER ERR_FILE_OPERATION_FAILED ERR_HANDLE_EOF "
    "ERR_WRONG_CHECKSUM ERR_INVALID_DATA ERR_INVALID_HANDLE ERR_INCOMPLETE_DATA "
    "ERR_VERSION_OUTDATED ERR_PATH_NOT_FOUND ERR_PATH_ALREADY_EXIST ERR_ADDRESS_ALREADY_USED "
    "ERR_STATE_FREEZED ERR_LOCAL_APP_FAILURE ERR_BIND_IOCP_FAILED ERR_NETWORK_START_FAILED "
    "ERR_NOT_IMPLEMENTED ERR_CHECKPOINT_FAILED ERR_WRONG_TIMING ERR_NO_NEED_OPERATE "
    "ERR_CORRUPTION ERR_TRY_AGAIN ERR_CLUSTER_NOT_FOUND ERR_CLUSTER_ALREADY_EXIST "
    "ERR_ZOOKEEPER_OPERATION ERR_K8S_CLUSTER_NOT_FOUND ERR_K8S_KUBECTL_NOT_FOUND "
    "ERR_K8S_DEPLOY_FAILED ERR_K8S_UNDEPLOY_FAILED ERR_RESOURCE_NOT_ENOUGH "
    "ERR_WIN_DEPLOY_FAILED ERR_WIN_UNDEPLOY_FAILED ERR_DOCKER_DAEMON_NOT_FOUND "
    "ERR_DOCKER_BINARY_NOT_FOUND ERR_DOCKER_DEPLOY_FAILED ERR_DOCKER_UNDEPLOY_FAILED "
    "ERR_NO_PRIMARY ERR_NO_REPLICA ERR_NO_META_SERVER ERR_READ_TABLE_FAILED ERR_SESSION_RESET "
    "ERR_META_RESET"
).split()

#: Every error name the official Python client understands, with its enum value.
KNOWN: dict[str, int] = {name: i for i, name in enumerate(_NAMES)}

#: Error names real servers may send that the official Python client does not know.
SERVER_ONLY = frozenset({
    "ERR_PARENT_PARTITION_MISUSED", "ERR_SPLITTING", "ERR_DISK_INSUFFICIENT", "ERR_APP_DROPPED",
    "ERR_CHILD_NOT_READY", "ERR_RDB_CORRUPTION", "ERR_DIR_NOT_EMPTY",
})


@dataclass(frozen=True)
class ErrorInfo:
    """What a client may conclude from one error name."""

    name: str
    definite: bool
    retriable: bool
    refresh: bool


# Replies that prove the request was rejected before it was applied. ERR_SESSION_RESET is not
# one: a write in flight when the connection died may have been applied (one that was never
# sent is a ``fail`` anyway, see outcome.classify).
_DEFINITE_REJECTIONS = {
    "ERR_OBJECT_NOT_FOUND", "ERR_INVALID_STATE", "ERR_INACTIVE_STATE", "ERR_NOT_ENOUGH_MEMBER",
    "ERR_BUSY", "ERR_CAPACITY_EXCEEDED", "ERR_PARENT_PARTITION_MISUSED",
    "ERR_FORWARD_TO_OTHERS", "ERR_SERVICE_NOT_ACTIVE", "ERR_INVALID_PARAMETERS",
    "ERR_HANDLER_NOT_FOUND",
}
_RETRY_WITH_REFRESH = {
    "ERR_SESSION_RESET", "ERR_TIMEOUT", "ERR_OBJECT_NOT_FOUND", "ERR_INVALID_STATE",
    "ERR_PARENT_PARTITION_MISUSED",
}
_RETRY_WITHOUT_REFRESH = {"ERR_NOT_ENOUGH_MEMBER", "ERR_BUSY", "ERR_CAPACITY_EXCEEDED"}


def _classify(name: str) -> ErrorInfo:
    if name.startswith(StorageError.CODE_PREFIX):  # the server answered: nothing was applied
        return ErrorInfo(name, definite=True, retriable=False, refresh=False)
    return ErrorInfo(
        name=name,
        definite=name in _DEFINITE_REJECTIONS,
        retriable=name in _RETRY_WITH_REFRESH or name in _RETRY_WITHOUT_REFRESH,
        refresh=name in _RETRY_WITH_REFRESH,
    )


# Built once: the client asks on every failed attempt.
_INFO = {name: _classify(name) for name in (*KNOWN, *SERVER_ONLY)}


def info(name: str) -> ErrorInfo:
    """Classify an error name (names outside the registry are indefinite and not retried)."""
    found = _INFO.get(name)
    return found if found is not None else _classify(name)


def is_known(name: str) -> bool:
    """Whether the official Python client knows ``name`` (the onebox may send it)."""
    return name in KNOWN


def is_decodable(name: str) -> bool:
    """Whether a reply may carry error name ``name`` (known, or sent only by real servers)."""
    return name in KNOWN or name in SERVER_ONLY
