"""Outcome: the plain record the client reports for every operation and every attempt.

Observers (metrics recorders, the Locust adapter, tests) receive one ``Outcome`` per attempt
(``level="attempt"``), one per operation (``level="op"``, emitted after its attempts) and one
per query the client sends a meta server (``level="meta"``, ``op="query_config"``,
``partition=-1``, ``node`` = the meta): a policy's recovery cost; and one per read a
replica probe sends a replica (``level="probe"``, ``op="probe"``; ``ok``: it is primary;
:mod:`loadgen.pegasus.probe`). Times are
``time.monotonic()`` seconds. Build them by keyword. ``outcome`` follows Jepsen's split of failures:

* ``ok``      — the operation succeeded;
* ``fail``    — it certainly did not apply (a definite rejection, a storage error, or nothing
  reached a server);
* ``unknown`` — a write that may or may not have applied (timed out, connection lost, ...).

Reads never end ``unknown``: whether a failed read "applied" changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import error_codes

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"
ATTEMPT, OP, META, PROBE = "attempt", "op", "meta", "probe"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt or one whole operation, as seen by the client."""

    level: str                  # "attempt" | "op" | "meta" | "probe"
    op: str                     # "put", "get", "multi_put", "multi_get", "remove", "ttl"
    table: str
    partition: int
    node: str | None            # address the (last) attempt went to; None if none was chosen
    start: float                # monotonic: the op was handed to the client / the attempt began
    end: float                  # monotonic: reply or failure
    outcome: str                # "ok" | "fail" | "unknown"
    error: str | None           # Pegasus error name or STORAGE_<status>; None when ok
    attempt: int                # attempt number (op level: attempts made)
    #: After this attempt's failure the policy asked for a config refresh and a meta query was
    #: then under way or scheduled (op level: after any attempt's); a request the policy's
    #: pacing turned down does not count. It says nothing of the query's answer.
    refreshed: bool
    policy: str = ""
    intended_start: float | None = None   # open-loop schedule time, when the caller gave one

    @property
    def duration_s(self) -> float:
        """``end - start``: the service time of an op, or the time of one attempt."""
        return self.end - self.start


def classify(error: str | None, *, write: bool, sent: bool) -> str:
    """Outcome of one attempt that ended with ``error`` (None = success).

    ``sent`` says whether the request may have reached a server.
    """
    if error is None:
        return OK
    if not write or not sent:  # a read changes nothing; an unsent write cannot have applied
        return FAIL
    return FAIL if error_codes.info(error).definite else UNKNOWN
