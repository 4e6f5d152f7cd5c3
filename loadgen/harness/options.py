"""pegbench's options on Locust's command line, and the workload settings they resolve to.

Added through ``events.init_command_line_parser``:

* ``--pegbench-profile PATH``: the TOML profile (``pegbench run PROFILE``'s file), shipped to
  workers. Not ``--profile``: that is Locust's own option (since 2.35: a name grouping test
  runs, shown and edited in its web UI), left to Locust; a TOML file given there is refused
  with a pointer to ``--pegbench-profile``;
* ``--meta HOST:PORT[,...]``: the cluster's metas (required for a onebox profile);
* ``--policies A,B``: the compared policies (default: the profile's ``policies.compare``);
* ``--set KEY=VALUE``: profile overrides, as ``pegbench run --set`` (repeatable);
* ``--run-id ID``: the first part of every key (default: a fresh id, shipped to workers).

Workers need none of these: their master sends its resolved settings
(``pegbench_settings``) before each test, whatever the workers' own command lines say.

Exit code of a plain ``locust`` run (:func:`exit_code_on_error`): failed requests are what a
fault run measures, so by default they do not fail the process; Locust's
``--exit-code-on-error N``, when given explicitly (flag, ``LOCUST_EXIT_CODE_ON_ERROR`` or a
config file), is honoured: any failed request makes the exit code N. ``pegbench run`` sets
the SLO verdict's code instead, whatever the options say.
"""

from __future__ import annotations

import argparse

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..config.profile import build_profile, load_profile
from ..config.schema import Profile
from ..errors import ConfigError
from ..load.workload import WorkloadSettings, new_run_id

SOURCE = "command line"
GROUP_DESCRIPTION = (
    "Pegasus recovery benchmark (loadgen.locustfile). In a fault-injection run requests fail "
    "by design, so failed requests do not fail the process (exit 0) unless "
    "--exit-code-on-error is given explicitly; pegbench run exits with its SLO verdict's code.")


def add_arguments(parser: Any) -> None:
    """Locust's ``init_command_line_parser`` listener: pegbench's options."""
    group = parser.add_argument_group("pegbench", GROUP_DESCRIPTION)
    group.add_argument("--pegbench-profile", default=None, metavar="PATH",
                       help="TOML profile, as pegbench run PROFILE (shipped to workers; "
                            "Locust's own --profile only names a group of test runs)")
    group.add_argument("--meta", default=None, metavar="HOST:PORT[,...]",
                       help="meta server addresses (default: the profile's cluster.meta)")
    group.add_argument("--policies", default=None, metavar="A,B",
                       help="compared policies (default: the profile's policies.compare)")
    group.add_argument("--set", dest="pegbench_set", action="append", default=None,
                       metavar="KEY=VALUE", help="override a profile key (repeatable)")
    group.add_argument("--run-id", dest="pegbench_run_id", default=None, metavar="ID",
                       help="first part of every key (default: fresh, shipped to workers)")
    # Set by pegbench when it starts the onebox: where a real client's meta queries are read.
    group.add_argument("--pegbench-meta-query-log", default="", help=argparse.SUPPRESS)
    # Locust's default (1) cannot be told from an explicit 1: None marks "not given", so a
    # plain run honours the flag only when asked (see exit_code_on_error).
    parser.set_defaults(exit_code_on_error=None)


def exit_code_on_error(options: Any) -> int | None:
    """Locust's ``--exit-code-on-error`` if it was given explicitly, else None."""
    value = getattr(options, "exit_code_on_error", None)
    return None if value is None else int(value)


def profile_path(options: Any) -> str | None:
    """The TOML profile ``--pegbench-profile`` names, if any (ConfigError if only Locust's
    own ``--profile`` names a file: the old spelling, now Locust's run-group name)."""
    path = getattr(options, "pegbench_profile", None)
    if path:
        return path
    candidate = getattr(options, "profile", None)
    if candidate and os.path.isfile(candidate):
        raise ConfigError(SOURCE, "--profile",
                          f"--pegbench-profile {candidate} (Locust's own --profile names a "
                          f"group of test runs, not a pegbench TOML profile)")
    return None


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def profile_from_options(options: Any, flags: Mapping[str, Any] | None = None) -> Profile:
    """The profile the parsed options describe: ``--pegbench-profile`` with ``--set``,
    ``--policies`` and ``flags`` (key -> value, checked as the profile's) applied, or the
    defaults (ConfigError if they do not make one)."""
    path = profile_path(options)
    sets: Sequence[str] = getattr(options, "pegbench_set", None) or ()
    policies = _split(getattr(options, "policies", None))
    flags = {**({"policies.compare": policies} if policies else {}), **(flags or {})}
    if path:
        return load_profile(path, sets=sets, flags=flags)
    if sets:
        raise ConfigError(SOURCE, "--set", "a profile (--pegbench-profile PATH) to override")
    tree = {"policies": {"compare": policies}} if policies else {}
    return build_profile(tree, SOURCE, default_name="locust")


def settings_from_options(options: Any) -> WorkloadSettings:
    """The workload settings the parsed options describe (ConfigError if they do not).

    Writes the resolved profile path and run id back into ``options``, so a master ships
    them to its workers.
    """
    path = profile_path(options)
    profile = profile_from_options(options)
    run_id = getattr(options, "pegbench_run_id", None) or new_run_id()
    settings = WorkloadSettings.from_profile(
        profile, meta=_split(getattr(options, "meta", None)), run_id=run_id,
        meta_query_log=getattr(options, "pegbench_meta_query_log", "") or "")
    options.pegbench_profile = path
    options.pegbench_run_id = run_id
    return settings


def apply_run_defaults(options: Any, settings: WorkloadSettings) -> None:
    """Plain ``locust`` runs: ``users`` per policy, all spawned within a second, and the
    profile's duration as ``--run-time``, unless given on the command line."""
    if getattr(options, "num_users", None) is None:
        options.num_users = settings.total_users
    if getattr(options, "spawn_rate", None) is None:
        options.spawn_rate = float(max(1, settings.total_users))
    if getattr(options, "run_time", None) is None and getattr(options, "headless", False):
        options.run_time = max(1, round(settings.workload.duration_s))
