"""The project's client against a real onebox: every op everywhere, and old vs new logic on kill -9."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gevent
import pytest
from support.onebox import TIMING_SLACK_S, first_new_primary, hash_keys_per_partition, make_box, node_of

from loadgen.errors import PegasusError
from loadgen.pegasus import Client

pytestmark = pytest.mark.onebox

#: Well above TIMING_SLACK_S: a failover client that waited for its deadline instead of
#: retrying at once would resume about OP_TIMEOUT_MS after the new primary appeared.
OP_TIMEOUT_MS = 3000


def test_every_op_on_every_partition(tmp_path):
    with make_box(tmp_path / "box") as box, Client(box.meta_addrs, op_timeout_ms=2000) as client:
        table = client.open_table("temp")
        for pidx, hk in hash_keys_per_partition().items():
            assert table.partition_of(hk) == pidx
            table.put(hk, "s", b"v%d" % pidx)
            assert table.get(hk, "s") == b"v%d" % pidx
            assert table.ttl(hk, "s") == -1
            table.put(hk, "t", "with-ttl", ttl=100)
            assert 90 <= table.ttl(hk, "t") <= 100
            table.multi_put(hk, {"a": b"1", "b": b"2"})
            assert table.multi_get(hk, ["a", "b", "missing"]) == {b"a": b"1", b"b": b"2"}
            table.remove(hk, "s")
            assert table.get(hk, "s") is None
            assert table.ttl(hk, "s") is None


@dataclass
class Probe:
    """A writer on one key: (start, end, error code or None) for every put, monotonic times."""

    table: object
    hash_key: bytes
    results: list[tuple[float, float, str | None]] = field(default_factory=list)
    running: bool = True

    def run(self, period_s: float = 0.02, max_ops: int = 5000) -> None:
        for n in range(max_ops):
            if not self.running:
                return
            start = time.monotonic()
            try:
                self.table.put(self.hash_key, b"s", b"%d" % n)
                self.results.append((start, time.monotonic(), None))
            except PegasusError as exc:
                self.results.append((start, time.monotonic(), exc.code))
            gevent.sleep(period_s)

    def first_ok_after(self, t: float) -> float | None:
        """Reply time of the first successful put that started after ``t``."""
        return next((end for start, end, err in self.results if start > t and err is None), None)

    def errors_between(self, t0: float, t1: float) -> list[str]:
        """Errors of the puts that started after ``t0`` and ended by ``t1``."""
        return [err for start, end, err in self.results if start > t0 and end <= t1 and err is not None]


def _wait_new_primary(box, pidx: int, old: str, after: float, timeout_s: float) -> float:
    """The failover instant from the meta's config log (exact, unlike polling the config,
    which blocks the gevent hub while the probes' replies wait)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        t = first_new_primary(box, pidx, old, after)
        if t is not None:
            return t
        gevent.sleep(0.02)
    raise AssertionError(f"partition {pidx} got no new primary within {timeout_s}s")


def test_kill_primary_failover_recovers_legacy_waits_for_a_server_reply(tmp_path):
    with make_box(tmp_path / "box") as box:
        fd = box.spec.fd
        hk = hash_keys_per_partition()[0]
        victim_addr = str(box.config().partitions[0].primary)
        victim = node_of(box, victim_addr)
        # A short redial throttle so the restarted node can answer legacy within the test.
        legacy = Client(box.meta_addrs, policy="legacy", op_timeout_ms=OP_TIMEOUT_MS,
                        policy_params={"dial_interval_s": 1.0})
        failover = Client(box.meta_addrs, policy="failover", op_timeout_ms=OP_TIMEOUT_MS)
        probes = {"legacy": Probe(legacy.open_table("temp"), hk),
                  "failover": Probe(failover.open_table("temp"), hk)}
        workers = [gevent.spawn(p.run) for p in probes.values()]
        try:
            gevent.sleep(0.5)
            assert all(p.first_ok_after(0) for p in probes.values()), "no write succeeded before the fault"
            t_kill = time.monotonic()
            box.kill(victim)
            t_failover = _wait_new_primary(box, 0, victim_addr, t_kill, fd.grace_s + fd.check_s + 5)
            gevent.sleep(max(1.5, 2 * OP_TIMEOUT_MS / 1000))
            t_observed = time.monotonic()

            ok = probes["failover"].first_ok_after(t_kill)
            assert ok is not None, "failover never wrote after the kill"
            assert ok - t_failover < TIMING_SLACK_S, \
                f"failover resumed {ok - t_failover:.3f}s after the new primary appeared"
            assert probes["legacy"].first_ok_after(t_kill) is None, \
                "legacy wrote to the new primary without any server reply forcing a refresh"
            assert set(probes["legacy"].errors_between(t_kill, t_observed)) <= {"ERR_TIMEOUT"}

            # The node comes back as a non-primary: its ERR_INVALID_STATE / ERR_OBJECT_NOT_FOUND
            # reply is what finally makes legacy refresh.
            t_restart = time.monotonic()
            box.restart(victim)
            ok = None
            deadline = time.monotonic() + 10
            while ok is None and time.monotonic() < deadline:
                gevent.sleep(0.1)
                ok = probes["legacy"].first_ok_after(t_restart)
            assert ok is not None, "legacy never recovered after the node returned"
            forced = probes["legacy"].errors_between(t_restart, ok)
            assert {"ERR_INVALID_STATE", "ERR_OBJECT_NOT_FOUND"} & set(forced), forced
        finally:
            for p in probes.values():
                p.running = False
            gevent.joinall(workers, timeout=5)
            legacy.close()
            failover.close()
