"""Locust users: one User class per compared policy, equal weights, each an open-loop arrival loop.

A user's one task launches the ops that are due (:class:`~loadgen.load.driver.OpDriver`), each in
its own greenlet, and its ``wait_time`` is the time until the next arrival, so the user is
never blocked by a reply and Locust's own stop works between task runs (the ops still in
flight are abandoned at ``on_stop``). Classes are made per policy name on demand and cached,
so every process (local, master, workers) resolves the same name to the same class:
``"failover"`` → ``FailoverUser``, ``"refresh-on-reset"`` → ``RefreshOnResetUser``.

Users find their process's :class:`~loadgen.load.workload.Workload` through the environment
(:func:`bind` / :func:`workload_of`).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from typing import ClassVar

from locust import User, task
from locust.env import Environment

from ..load.driver import OpDriver
from ..load.workload import Workload

_WORKLOADS: weakref.WeakKeyDictionary[Environment, Workload] = weakref.WeakKeyDictionary()
_CLASSES: dict[str, type[PolicyUser]] = {}


def bind(environment: Environment, workload: Workload) -> None:
    """Make ``workload`` the one the users of ``environment`` drive."""
    _WORKLOADS[environment] = workload


def workload_of(environment: Environment) -> Workload:
    """The workload bound to ``environment`` (KeyError if none)."""
    return _WORKLOADS[environment]


class PolicyUser(User):
    """Base of the per-policy users: one open-loop schedule per user (see the module)."""

    abstract = True
    #: The compared policy (a registered name or a dotted path).
    policy: ClassVar[str] = ""

    def on_start(self) -> None:
        """Start this user's schedule now (plus its random phase)."""
        self.driver = OpDriver(workload_of(self.environment), self.policy,
                               self.environment.events.request.fire, on_crash=self._crashed)

    def _crashed(self, exc: BaseException) -> None:
        # as Locust counts a task's exception: in the runner's exceptions and the UI
        self.environment.events.user_error.fire(user_instance=self, exception=exc,
                                                tb=exc.__traceback__)

    def on_stop(self) -> None:
        """Count the arrivals due but never launched as missed; abandon the ops in flight."""
        driver = getattr(self, "driver", None)   # None: stopped before on_start finished
        if driver is not None:
            driver.close()

    def wait_time(self) -> float:
        """Seconds until this user's next op is due."""
        return self.driver.delay()

    @task
    def launch_due_ops(self) -> None:
        """Launch the ops that are due now (see :meth:`OpDriver.step`)."""
        self.driver.step()


def class_name(policy: str) -> str:
    """``"refresh-on-reset"`` → ``"RefreshOnResetUser"`` (dotted paths likewise)."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", policy) if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) + "User"


def user_class(policy: str) -> type[PolicyUser]:
    """The User class of ``policy`` (the same class on every call)."""
    cls = _CLASSES.get(policy)
    if cls is None:
        name = class_name(policy)
        taken = {c.__name__ for c in _CLASSES.values()}
        base, n = name, 2
        while name in taken:    # two policies whose names differ only in punctuation
            name, n = f"{base}{n}", n + 1
        cls = _CLASSES[policy] = type(name, (PolicyUser,), {
            "policy": policy, "__module__": __name__,
            "__doc__": f"Open-loop user of the {policy!r} policy."})
    return cls


def user_classes(policies: Iterable[str]) -> list[type[PolicyUser]]:
    """One class per policy, in order (equal weights: the same number of users each)."""
    return [user_class(p) for p in policies]
