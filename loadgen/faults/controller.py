"""The fault controller: runs a fault plan against the clock, one fault at a time, in a greenlet.

For each planned fault, at ``t0 + at_s`` (``t0``: the run's start instant, monotonic):

1. health gate (``[faults.health_gate]``): wait until the cluster is healthy, at most
   ``limit_s``, else skip the fault and record why;
2. resolve the target: ``primary-of:P`` asks the meta for the current config (no primary:
   skipped), a node name maps to its address; a node another fault still holds is skipped;
3. inject it (the kind's ``inject`` through the injector); the affected partitions are those
   whose primary was on the node at ``t_inject``, the touched ones those with any replica
   there, primary or secondary (both from the meta observer); the ``fault_instant`` event
   (:mod:`loadgen.events`) fires with a :class:`~loadgen.metrics.FaultInstant` (the fault's
   id, kind and node, inject, t_inject, affected);
4. heal it ``duration_s`` / ``restart_after_s`` after ``t_inject`` (``fault_instant`` fires
   with its heal instant). Heals come due while later faults wait (for their time or the health gate),
   so faults on different nodes may overlap as the plan says.

Every wait is a gevent wait and every blocking call goes to gevent's threadpool
(:mod:`.cooperative`): the load's greenlets keep running.

Healing is done in ``finally``: whatever ends the run, nothing is left paused. At
:meth:`FaultController.stop` every fault still in place is healed now (pauses resumed, kills
with ``restart_after_s`` and restarts restarted), except that a kill without
``restart_after_s`` is left dead when the run ends normally (that is the fault the profile
asked for; a onebox is stopped right after). When the run is interrupted (``stop(
interrupted=True)``, a stop before every planned fault came due, or the controller's greenlet
killed) such kills are restarted too, so an interrupted run leaves no node dead behind it.
Planned faults that never came due are recorded as skipped.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event

from ..config.schema import HealthGateConfig, Profile
from ..config.targets import PlannedTarget
from ..events import Events
from ..metrics.events import HEAL, INJECT, FaultEvent, FaultInstant
from ..metrics.outputs import FAULTS_JSONL
from .. import fault_kinds as kinds
from .cluster import Cluster, ClusterView, PartitionConfig, Resolution, resolve_target
from .cooperative import run_blocking, wait_until
from .history import ConfigChange
from .injector import ActionRecord, Injector, Node
from .observer import MetaObserver
from .records import HEALED_BY_PLAN, HEALED_BY_STOP, NOT_HEALED, FaultLog, FaultRecord
from ..config.plan import PlannedFault, plan_faults

log = logging.getLogger(__name__)

#: ``origin`` of a fault asked for while the run goes (:meth:`FaultController.inject_now`).
ORIGIN_UI = "ui"

#: How often the health gate asks whether the cluster is healthy.
GATE_POLL_S = 0.1


@dataclass
class _Held:
    """A fault in place (or possibly in place: a failed inject that may have half-worked)."""

    planned: PlannedFault
    kind: kinds.FaultKind
    node: Node
    injected: bool
    t_inject: float | None
    heal_due: float | None             # None: held to the end (a kill never restarted)
    affected: tuple[int, ...] = ()
    touched: tuple[int, ...] | None = None   # None: no config seen to tell
    actions: list[ActionRecord] = field(default_factory=list)
    skip_reason: str = ""
    t_heal: float | None = None
    healed_by: str = ""
    heal_failed: bool = False
    last_try: bool = False             # the end of the run tried to heal it


class FaultController:
    """Runs ``plan`` (see the module docstring); ``start()``, then ``stop()`` at the run's end.

    ``log_path``: where ``faults.jsonl`` goes (None: not written). ``observer``: defaults to
    the cluster's own (the onebox's config log, or meta polling). ``on_demand``: also take
    faults asked for while it runs (:meth:`inject_now`, the web UI's form); it then runs until
    :meth:`stop`, not only until the plan is done.
    """

    def __init__(self, plan: Sequence[PlannedFault], *, injector: Injector,
                 cluster: ClusterView, observer: MetaObserver | None = None,
                 health_gate: HealthGateConfig | None = None,
                 events: Events | None = None, log_path: str | Path | None = None,
                 on_demand: bool = False):
        self.plan = tuple(plan)
        self.injector = injector
        self.cluster = cluster
        self.observer = observer if observer is not None else cluster.observer()
        self.health_gate = health_gate if health_gate is not None else HealthGateConfig()
        #: where each fault's inject and heal instants are announced (``fault_instant``)
        self.events = events if events is not None else Events()
        self.log_path = None if log_path is None else Path(log_path)
        self.t0: float | None = None
        self._log: FaultLog | None = None
        self._records: dict[int, FaultRecord] = {}
        self._held: list[_Held] = []
        self._settling: list[_Held] = []      # healed (or held to the end), not yet final
        self._done: list[_Held] = []          # every injected fault, for horizons
        self._processed = 0
        self._stopping = Event()
        self.on_demand = on_demand
        self._requests: deque[PlannedFault] = deque()
        self._poke = Event()                  # set on stop and on each request
        self._next_id = len(self.plan) + 1    # the plan's ids are 1..len(plan)
        self._interrupted = True              # until the runner says the plan ran its course
        self._greenlet: gevent.Greenlet | None = None

    @classmethod
    def from_profile(cls, profile: Profile, cluster: Cluster, *, events: Events | None = None,
                     out_dir: str | Path | None = None, on_demand: bool = False) -> FaultController:
        """The controller of ``profile``'s plan, injector and health gate against ``cluster``;
        ``faults.jsonl`` goes to ``out_dir``."""
        return cls(plan_faults(profile), injector=cluster.injector(profile.injector),
                   cluster=cluster.view(),
                   health_gate=profile.faults.health_gate, events=events,
                   log_path=None if out_dir is None else Path(out_dir) / FAULTS_JSONL,
                   on_demand=on_demand)

    # ------------------------------------------------------------------ public API

    def start(self, t0: float | None = None) -> None:
        """Start the observer and run the plan from ``t0`` (default: now) in a greenlet."""
        if self._greenlet is not None:
            raise RuntimeError("the fault controller was already started")
        self.t0 = time.monotonic() if t0 is None else t0
        if self.log_path is not None:
            self._log = FaultLog(self.log_path)
        self.observer.start()
        self._greenlet = gevent.spawn(self._run)

    @property
    def finished(self) -> bool:
        """Every planned fault was processed and every scheduled heal done."""
        return self._greenlet is not None and self._greenlet.dead

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait (cooperatively) until :attr:`finished`; whether it is."""
        if self._greenlet is not None:
            self._greenlet.join(timeout_s)
        return self.finished

    def stop(self, *, interrupted: bool = False) -> tuple[FaultRecord, ...]:
        """End the run: heal what is in place (see the module docstring), write the last
        records, stop the observer; every record, by id. Idempotent."""
        if interrupted:
            self._interrupted = True
        if self.t0 is None:  # never started: every fault is recorded as not come due
            self.t0 = time.monotonic()
        self._stopping.set()
        self._poke.set()
        if self._greenlet is not None:
            self._greenlet.join()  # its finally heals
        try:
            self._heal_all()  # what the runner left: kills never restarted, if interrupted now
            self.observer.sync()
            self._finalize(self._settling + self._held)
            for planned in self.plan[self._processed:]:
                self._skip(planned, "the run ended before it came due")
            self._processed = len(self.plan)
        finally:
            self.observer.stop()
            if self._log is not None:
                self._log.close()
        return self.records

    @property
    def records(self) -> tuple[FaultRecord, ...]:
        """The final records so far, by id."""
        return tuple(self._records[i] for i in sorted(self._records))

    def fault_events(self) -> list[FaultEvent]:
        """The fault events for the analysis (after :meth:`stop`: one per planned fault)."""
        return [r.event for r in self.records]

    # ------------------------------------------------------------------ the runner

    def inject_now(self, kind: str, target: PlannedTarget, *, duration_s: float | None = None,
                   restart_after_s: float | None = None) -> int:
        """Queue a fault to inject at once, beside the plan (``origin = "ui"``), checked and
        recorded like a planned one (a node another fault holds: skipped, saying which); its
        id. RuntimeError unless the controller runs ``on_demand``."""
        if not self.on_demand or self._greenlet is None or self._greenlet.dead \
                or self._stopping.is_set():
            raise RuntimeError("no run is in progress to inject a fault into")
        kinds.get(kind)   # KeyError for a kind nobody registered
        self._next_id += 1
        planned = PlannedFault(id=self._next_id - 1, at_s=time.monotonic() - self.t0, kind=kind,
                               target=target, duration_s=duration_s,
                               restart_after_s=restart_after_s, origin=ORIGIN_UI)
        self._requests.append(planned)
        self._poke.set()
        return planned.id

    # ------------------------------------------------------------------ the runner

    def _run(self) -> None:
        try:
            for planned in self.plan:
                if not self._wait_serving(self.t0 + planned.at_s):
                    return
                self._process_safely(planned)
                self._processed += 1
            self._interrupted = False  # the plan ran its course: a normal end from here on
            while True:
                due = [h.heal_due for h in self._held if h.heal_due is not None]
                if not due and not self.on_demand:
                    return
                if not self._wait_serving(max(due) if due else math.inf):
                    return
        finally:
            self._heal_all()

    def _wait_serving(self, t: float) -> bool:
        """Wait until ``t`` (healing held faults as they come due), injecting the faults
        asked for meanwhile; False on stop."""
        while not self._wait(t):
            if self._stopping.is_set():
                return False
            self._poke.clear()
            while self._requests:
                self._process_safely(self._requests.popleft())
        return True

    def _process_safely(self, planned: PlannedFault) -> None:
        try:
            self._process(planned)
        except Exception as exc:  # noqa: BLE001 - one fault's bug must not end the run
            log.exception("fault %s: controller error", planned.id)
            self._skip(planned, f"controller error: {type(exc).__name__}: {exc}")

    def _wait(self, t: float) -> bool:
        """Wait until ``t``, healing held faults as they come due; False on stop or request."""
        while True:
            due = min((h for h in self._held if h.heal_due is not None),
                      key=lambda h: h.heal_due, default=None)
            if due is None or due.heal_due > t:
                return wait_until(t, self._poke)
            if not wait_until(due.heal_due, self._poke):
                return False
            self._heal(due, HEALED_BY_PLAN)

    def _process(self, planned: PlannedFault) -> None:
        kind = kinds.get(planned.kind)
        if not self.injector.injects:
            self._skip(planned, f"not injected: the {self.injector.name!r} injector observes "
                                "only")
            return
        if self.health_gate.enabled:
            problems = self._await_healthy(self.health_gate.limit_s)
            if problems is None:  # stopped while waiting
                self._skip(planned, "the run ended while waiting for a healthy cluster")
                return
            if problems:
                self._skip(planned, f"cluster not healthy within {self.health_gate.limit_s:g} s: "
                                    + "; ".join(problems[:5]))
                return
        node, config, reason = self._resolve(planned.target)
        if node is None:
            self._skip(planned, reason)
            return
        holder = next((h for h in self._held if h.node.name == node.name), None)
        if holder is not None:
            self._skip(planned, f"{node.name} is still held by fault {holder.planned.id} "
                                f"({holder.planned.kind})", node=node)
            return
        self._finalize(self._settling)  # healed faults are settled by now: write them
        self._inject(planned, kind, node, config)

    def _inject(self, planned: PlannedFault, kind: kinds.FaultKind, node: Node,
                config: tuple[PartitionConfig, ...] | None) -> None:
        action = self._step(kind.inject, "inject", node)
        hold = None if planned.heal_at_s is None else planned.heal_at_s - planned.at_s
        if not action.ok:
            reason = f"inject failed: {action.action} {node.name}: {action.error}"
            if action.uncertain and hold is not None:  # it may have half-worked: heal it
                self._held.append(_Held(planned, kind, node, injected=False, t_inject=None,
                                        heal_due=action.t_returned + hold, actions=[action],
                                        skip_reason=reason))
            else:
                self._skip(planned, reason, node=node, actions=(action,))
            return
        self.observer.sync()
        history = self.observer.history
        primaries = history.primaries_at(action.t)
        touched = history.hosted_at(node.addr, action.t) if primaries else None
        if not primaries and config is not None:  # the observer has seen nothing yet
            primaries = {p.pidx: p.primary for p in config}
            touched = tuple(p.pidx for p in config if node.addr in (p.primary, *p.secondaries))
        affected = tuple(sorted(p for p, addr in primaries.items() if addr == node.addr))
        if touched is not None:
            touched = tuple(sorted(set(touched) | set(affected)))
        held = _Held(planned, kind, node, injected=True, t_inject=action.t,
                     heal_due=None if hold is None else action.t + hold, affected=affected,
                     touched=touched, actions=[action])
        self._held.append(held)
        self._done.append(held)
        self._announce(held, INJECT, action.t)

    def _heal(self, held: _Held, healed_by: str) -> None:
        action = self._step(held.kind.heal, "heal", held.node)
        held.actions.append(action)
        if not action.ok:
            log.warning("fault %s: heal failed: %s %s: %s", held.planned.id, action.action,
                        held.node.name, action.error)
            held.heal_failed = True
            held.heal_due = None  # tried again when the run ends
            return
        self._held.remove(held)
        held.t_heal, held.healed_by = action.t, healed_by
        self._settling.append(held)
        if held.injected:
            self._announce(held, HEAL, action.t)

    def _step(self, step: kinds.Step, what: str, node: Node) -> ActionRecord:
        """``step(injector, node)``; an injector that raises (it should not) is a failure."""
        t = time.monotonic()
        try:
            return step(self.injector, node)
        except Exception as exc:  # noqa: BLE001 - recorded in the event, never fatal
            log.exception("%s of %s raised", what, node.name)
            return ActionRecord(action=what, node=node.name, ok=False, t=None, instant="",
                                t_sent=t, t_returned=time.monotonic(), uncertain=True,
                                error=f"{type(exc).__name__}: {exc}")

    def _heal_all(self) -> None:
        """Heal every fault in place (see the module docstring for kills never restarted)."""
        for held in list(self._held):
            if held.last_try:
                continue
            if held.heal_due is None and not held.heal_failed and not self._interrupted:
                continue  # a kill without restart_after_s, at a normal end: left dead
            held.last_try = True
            self._heal(held, HEALED_BY_STOP)

    # ------------------------------------------------------------------ gate, targets

    def _await_healthy(self, limit_s: float) -> list[str] | None:
        """[] once healthy; the problems if still unhealthy after ``limit_s``; None on stop."""
        deadline = time.monotonic() + limit_s
        while True:
            try:
                problems = run_blocking(self.cluster.problems)
            except Exception as exc:  # noqa: BLE001 - cannot tell: not healthy
                problems = [f"health unknown: {exc}"]
            if not problems:
                return []
            if time.monotonic() >= deadline:
                return problems
            if not self._wait(min(time.monotonic() + GATE_POLL_S, deadline)):
                return None

    def _resolve(self, target: PlannedTarget) -> Resolution:
        try:
            return run_blocking(resolve_target, self.cluster, target)
        except Exception as exc:  # noqa: BLE001 - recorded as the skip reason
            return Resolution(None, None, f"target {target} not resolved: {exc}")

    # ------------------------------------------------------------------ records

    def _skip(self, planned: PlannedFault, reason: str, *, node: Node | None = None,
              actions: tuple[ActionRecord, ...] = ()) -> None:
        log.warning("fault %s (%s %s) skipped: %s", planned.id, planned.kind, planned.target,
                    reason)
        self._write(self._record(planned, node=node, actions=actions, skipped=True,
                                 skip_reason=reason))

    def _record(self, planned: PlannedFault, *, node: Node | None,
                actions: tuple[ActionRecord, ...], healed_by: str = NOT_HEALED,
                **event: Any) -> FaultRecord:
        """``planned``'s record; ``event``: its event's fields past id, kind and node (a
        skipped one is at the planned instant)."""
        t_planned = self.t0 + planned.at_s
        if event.get("skipped"):
            event["t_inject"] = t_planned
        return FaultRecord(
            FaultEvent(id=str(planned.id), kind=planned.kind,
                       node=node.name if node else str(planned.target), **event),
            target=str(planned.target), origin=planned.origin, at_s=planned.at_s,
            t_planned=t_planned, injector=self.injector.name, addr=node.addr if node else "",
            healed_by=healed_by, actions=actions)

    def _finalize(self, held: Iterable[_Held]) -> None:
        """Write the records of ``held`` (healed, or at the end of the run)."""
        for h in sorted(held, key=lambda h: h.planned.id):
            if not h.injected:
                self._write(self._record(h.planned, node=h.node, actions=tuple(h.actions),
                                         skipped=True, skip_reason=h.skip_reason))
                continue
            changes = {p: self._failover_change(h, p) for p in h.affected}
            failover = {p: None if c is None else c.t - h.t_inject for p, c in changes.items()}
            promoted = {p: self._node_name(c.primary) for p, c in changes.items()
                        if c is not None}
            t_heal = h.t_heal
            if t_heal is None and h.heal_due is None and not h.heal_failed:
                # a kill never restarted: DESIGN.md's t_heal is the last failover instant
                known = [s for s in failover.values() if s is not None]
                t_heal = h.t_inject + max(known) if known else None
            self._write(self._record(
                h.planned, node=h.node, actions=tuple(h.actions), healed_by=h.healed_by,
                t_inject=h.t_inject, t_heal=t_heal, affected_partitions=h.affected,
                server_failover_s=failover, touched_partitions=h.touched, promoted=promoted))
        self._settling = [h for h in self._settling if h.planned.id not in self._records]

    def _failover_change(self, held: _Held, pidx: int) -> ConfigChange | None:
        """The config that ended ``held``'s failover of ``pidx`` (None: it never changed)."""
        later = [h.t_inject for h in self._done
                 if h.t_inject > held.t_inject and pidx in h.affected]
        return self.observer.history.failover_change(pidx, held.t_inject, held.node.addr,
                                                     t_heal=held.t_heal,
                                                     until=min(later, default=math.inf))

    def _node_name(self, addr: str) -> str:
        """The name of the node at ``addr`` (the address itself if the cluster cannot say)."""
        try:
            return self.cluster.node_at(addr).name
        except Exception:  # noqa: BLE001 - a missing name must not lose the record
            log.exception("no node name for %s", addr)
            return addr

    def _write(self, record: FaultRecord) -> None:
        if record.id in self._records:
            return
        self._records[record.id] = record
        if self._log is not None:
            self._log.write(record)
        self.events.fault_recorded.fire(event=record.event)

    def _announce(self, held: _Held, edge: str, t: float) -> None:
        self.events.fault_instant.fire(instant=FaultInstant(
            str(held.planned.id), held.kind.name, held.node.name, edge, t, held.affected))
