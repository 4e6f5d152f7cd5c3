"""Meta observers: follow a table's partition configs into a :class:`~.history.ConfigHistory`.

* :class:`LogTailObserver` — the onebox: tails the meta's config-change log (JSON lines with
  the monotonic instant of every change: exact, nothing is missed).
* :class:`PollingObserver` — an external cluster: a one-shot config query every
  ``interval_s`` (20 ms); a change is dated by the reply that first showed it, so it is late
  by at most one interval plus a round trip.

Both run in a greenlet (``start``/``stop``); ``sync()`` takes in what is known right now.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Protocol

import gevent
from gevent.event import Event

from ..pegasus.blocking import query_config
from .cooperative import run_blocking
from .history import ConfigChange, ConfigHistory

log = logging.getLogger(__name__)

#: How often the log is read / the meta polled.
TAIL_INTERVAL_S = 0.02
POLL_INTERVAL_S = 0.02
POLL_TIMEOUT_S = 1.0


class MetaObserver(Protocol):
    """Follows partition configs into ``history``."""

    history: ConfigHistory

    def start(self) -> None: ...

    def sync(self) -> None:
        """Take in every change known now (the onebox log up to its end)."""
        ...

    def stop(self) -> None: ...


class _Loop:
    """A greenlet calling ``step()`` every ``interval_s`` until stopped; a failing step is
    logged and the loop goes on (an observer must outlive a bad read)."""

    interval_s = TAIL_INTERVAL_S

    def __init__(self) -> None:
        self.history = ConfigHistory()
        self._stopping = Event()
        self._greenlet: gevent.Greenlet | None = None

    def step(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while not self._stopping.is_set():
            t_next = time.monotonic() + self.interval_s
            try:
                self.step()
            except Exception:  # noqa: BLE001 - see the class docstring
                log.exception("%s: step failed; going on", type(self).__name__)
            self._stopping.wait(max(0.0, t_next - time.monotonic()))

    def stop(self) -> None:
        self._stopping.set()
        if self._greenlet is not None:
            self._greenlet.join()


class LogTailObserver(_Loop):
    """Tails the onebox meta's ``config-changes.jsonl`` (see the module docstring)."""

    interval_s = TAIL_INTERVAL_S

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def step(self) -> None:
        self.sync()

    def sync(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:  # the meta has not written its first change yet
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for its end
        for line in lines:
            if line.strip():
                self.history.add(_from_log(json.loads(line)))


def _from_log(record: dict) -> ConfigChange:
    return ConfigChange(t=float(record["t_mono"]), pidx=int(record["pidx"]),
                        ballot=int(record["ballot"]), primary=record["primary"],
                        secondaries=tuple(record.get("secondaries", ())),
                        reason=record.get("reason", ""))


class PollingObserver(_Loop):
    """Polls the metas for ``table``'s config every ``interval_s`` (see the module docstring)."""

    def __init__(self, meta: list[str], table: str, *, interval_s: float = POLL_INTERVAL_S,
                 timeout_s: float = POLL_TIMEOUT_S):
        super().__init__()
        self.meta, self.table = list(meta), table
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.polls = self.failures = 0
        self._last: dict[int, tuple[int, str, tuple[str, ...]]] = {}
        self.t_last_poll = -math.inf

    def step(self) -> None:
        try:
            resp = run_blocking(query_config, self.meta, self.table, timeout_s=self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - a meta that does not answer is a fact
            self.failures += 1
            log.debug("meta poll failed: %s", exc)
            return
        t = time.monotonic()  # the reply's instant: the change happened before it
        self.polls += 1
        self.t_last_poll = t
        for p in resp.partitions:
            pidx = p.pid.partition_index
            state = (p.ballot, str(p.primary), tuple(str(s) for s in p.secondaries or ()))
            if self._last.get(pidx) != state:
                self._last[pidx] = state
                self.history.add(ConfigChange(t=t, pidx=pidx, ballot=state[0], primary=state[1],
                                              secondaries=state[2], reason="polled"))

    def sync(self) -> None:
        """Polled history is as of the last poll: nothing more can be known without one."""
