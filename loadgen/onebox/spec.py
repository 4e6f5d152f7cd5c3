"""The onebox spec: everything a node process needs to know, shared as ``<dir>/spec.json``.

The supervisor writes it once per start; every node reads it (``python -m loadgen.onebox.node
--spec <dir>/spec.json --name replica2``). Defaults are Pegasus's own (PROTOCOL.md §9-§10).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import ConfigError
from ..pegasus.codec import MAX_FRAME_BYTES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_META_PORT = 34601
DEFAULT_REPLICA_BASE_PORT = 34801
DEFAULT_TABLE = "temp"
DEFAULT_APP_ID = 1
META_NODE = "meta1"
#: Name of the meta's JSON-lines config-change log inside its node dir.
CONFIG_LOG = "config-changes.jsonl"
#: Name of the meta's JSON-lines log of config queries (``t`` monotonic, ``peer`` host:port):
#: whose queries they were is found from the peer's port (a real client's meta queries).
QUERY_LOG = "config-queries.jsonl"


@dataclass(frozen=True)
class FDConfig:
    """Failure-detector timings in seconds (Pegasus defaults: beacon 3, check 2, lease 20, grace 22)."""

    beacon_s: float = 3.0
    check_s: float = 2.0
    lease_s: float = 20.0
    grace_s: float = 22.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            # nan and inf pass a plain "> 0" test; gevent.sleep(nan) never returns
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError("", f"fd.{f.name}", f"a positive number of seconds, got {value!r}")
        if self.grace_s <= self.lease_s:
            raise ConfigError("", "fd.grace_s",
                              f"greater than fd.lease_s ({self.lease_s}) so a cut-off primary "
                              "stops serving before the meta replaces it")
        if self.beacon_s >= self.lease_s:
            raise ConfigError("", "fd.beacon_s", f"smaller than fd.lease_s ({self.lease_s})")
        if self.check_s >= self.grace_s:
            raise ConfigError("", "fd.check_s", f"smaller than fd.grace_s ({self.grace_s}) "
                                                "so a death is noticed within the grace period")


#: Short timings for tests: a dead node is replaced in about a second.
FAST_FD = FDConfig(beacon_s=0.1, check_s=0.05, lease_s=0.6, grace_s=0.8)


@dataclass(frozen=True)
class OneboxSpec:
    """Shape, ports and timings of one onebox."""

    dir: str
    replica_nodes: int = 3
    partitions: int = 8
    replicas: int = 3
    min_replicas: int = 2
    table: str = DEFAULT_TABLE
    app_id: int = DEFAULT_APP_ID
    host: str = DEFAULT_HOST
    meta_port: int = DEFAULT_META_PORT
    replica_ports: tuple[int, ...] = ()
    fd: FDConfig = field(default_factory=FDConfig)
    #: decrees kept in a replica's log before it checkpoints and truncates
    checkpoint_every: int = 10000
    #: checkpoint bytes per prepare when a learner copies it (the frame limit is 64 MiB)
    learn_chunk_bytes: int = 4 * 1024 * 1024
    #: drop a client request unanswered once it waited in a replica's queue longer than its
    #: header's client_timeout, as rDSN's rpc_request_dropped_before_execution_when_timeout
    #: (off in Pegasus's shipped config)
    drop_expired: bool = False

    def __post_init__(self):
        p = self.partitions
        if p < 1 or p & (p - 1):
            raise ConfigError("", "partitions", f"a power of two, got {p}")
        if self.replica_nodes < 1:
            raise ConfigError("", "replica_nodes", f"at least 1, got {self.replica_nodes}")
        if not 1 <= self.replicas <= self.replica_nodes:
            raise ConfigError("", "replicas", f"between 1 and replica_nodes ({self.replica_nodes})")
        if not 1 <= self.min_replicas <= self.replicas:
            raise ConfigError("", "min_replicas", f"between 1 and replicas ({self.replicas})")
        if self.checkpoint_every < 1:
            raise ConfigError("", "checkpoint_every", f"at least 1, got {self.checkpoint_every}")
        if not 1 <= self.learn_chunk_bytes <= MAX_FRAME_BYTES // 2:
            raise ConfigError("", "learn_chunk_bytes", f"between 1 and {MAX_FRAME_BYTES // 2} "
                                                       f"(half a frame), got {self.learn_chunk_bytes}")
        if not isinstance(self.drop_expired, bool):
            raise ConfigError("", "drop_expired", f"true or false, got {self.drop_expired!r}")
        if not self.replica_ports:
            ports = tuple(DEFAULT_REPLICA_BASE_PORT + i for i in range(self.replica_nodes))
            object.__setattr__(self, "replica_ports", ports)
        if len(self.replica_ports) != self.replica_nodes:
            raise ConfigError("", "replica_ports", f"{self.replica_nodes} ports")
        ports = (self.meta_port, *self.replica_ports)
        for key, port in zip(("meta_port", *["replica_ports"] * self.replica_nodes), ports):
            if not 0 < port < 65536:
                raise ConfigError("", key, f"ports within 1-65535, got {port}")
        if len(set(ports)) != len(ports):
            # two nodes on one port: the second would die at bind with a less clear error
            raise ConfigError("", "replica_ports", f"ports distinct from each other and from "
                                                   f"meta_port {self.meta_port}, got {ports[1:]}")

    @property
    def meta_addr(self) -> str:
        return f"{self.host}:{self.meta_port}"

    @property
    def replica_names(self) -> list[str]:
        return [f"replica{i + 1}" for i in range(self.replica_nodes)]

    @property
    def nodes(self) -> dict[str, str]:
        """Node name -> ``host:port``, meta first."""
        out = {META_NODE: self.meta_addr}
        for name, port in zip(self.replica_names, self.replica_ports):
            out[name] = f"{self.host}:{port}"
        return out

    def node_dir(self, name: str) -> Path:
        return Path(self.dir) / name

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> OneboxSpec:
        raw = json.loads(text)
        raw["fd"] = FDConfig(**raw["fd"])
        raw["replica_ports"] = tuple(raw["replica_ports"])
        return cls(**raw)

    def write(self) -> Path:
        path = Path(self.dir) / "spec.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, path: str | Path) -> OneboxSpec:
        return cls.from_json(Path(path).read_text())
