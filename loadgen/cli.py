"""The ``pegbench`` command line: argument parsing and exit codes, nothing else.

Each command group registers its sub-parsers in one ``_add_*`` function and sets ``func`` to
a handler ``(args) -> int``; handlers call into the package. Exit codes (DESIGN.md,
"Outputs"): 0 ok, 1 verdict failed, 2 usage/profile/input error, 3 runtime failure,
130 interrupted. Handlers import their modules lazily, so ``--help`` stays fast and works
even when an optional module is absent.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import traceback
from collections.abc import Callable
from importlib import metadata

from . import __version__
from .errors import ConfigError, PegbenchError
from .exitcodes import EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE

#: libraries whose versions ``pegbench version`` reports
KEY_LIBRARIES = ("locust", "gevent", "thrift", "hdrhistogram", "plotly", "rich")


def _err(message: str) -> None:
    print(f"pegbench: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------- version

def _version(args: argparse.Namespace) -> int:
    print(f"pegbench {__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    for lib in KEY_LIBRARIES:
        try:
            print(f"{lib} {metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            print(f"{lib} not installed")
    return EXIT_OK


# ----------------------------------------------------------------------- onebox

#: onebox spec keys -> the ``onebox start`` flag that sets them, for errors that name the flag
START_FLAGS = {"dir": "--dir", "replica_nodes": "--replica-nodes", "partitions": "--partitions",
               "meta_port": "--meta-port", "replica_ports": "--replica-port",
               "fd.beacon_s": "--fd-beacon", "fd.check_s": "--fd-check",
               "fd.lease_s": "--fd-lease", "fd.grace_s": "--fd-grace",
               "drop_expired": "--drop-expired"}


def _as_flag_error(exc: ConfigError) -> ConfigError:
    """The same complaint, naming the command-line flag instead of the spec key."""
    flag = START_FLAGS.get(exc.key)
    if flag is None:
        return exc
    expected = exc.expected
    for key, other in START_FLAGS.items():  # "greater than fd.lease_s" -> "... --fd-lease"
        if key != "dir":  # a plain word: only the compound keys are unambiguous in prose
            expected = expected.replace(key, other)
    return ConfigError("command line", flag, expected)


def _onebox_start(args: argparse.Namespace) -> int:
    import time

    from .onebox import control_client
    from .onebox.control_protocol import SUPERVISOR_LOG
    from .onebox.ownership import owner_pid
    from .onebox.spec import FDConfig, OneboxSpec

    base = args.replica_port
    try:
        fd = FDConfig(beacon_s=args.fd_beacon, check_s=args.fd_check, lease_s=args.fd_lease,
                      grace_s=args.fd_grace)
        spec = OneboxSpec(dir=args.dir, replica_nodes=args.replica_nodes,
                          partitions=args.partitions, meta_port=args.meta_port,
                          replica_ports=tuple(range(base, base + max(args.replica_nodes, 0))),
                          fd=fd, drop_expired=args.drop_expired)
        _err(f"starting onebox in {args.dir}: meta {spec.meta_addr}, {spec.replica_nodes} "
             f"replica nodes on ports {base}-{base + spec.replica_nodes - 1}, "
             f"{spec.partitions} partitions"
             f"{', dropping expired requests' if spec.drop_expired else ''}; "
             "waiting until healthy ...")
        t0 = time.monotonic()
        meta = control_client.start_background(spec, start_timeout_s=args.start_timeout)
    except ConfigError as exc:
        raise _as_flag_error(exc) from None
    _err(f"onebox healthy after {time.monotonic() - t0:.1f}s (supervisor pid "
         f"{owner_pid(args.dir)}, log {args.dir}/{SUPERVISOR_LOG})")
    print(meta, flush=True)
    return EXIT_OK


def _onebox_status(args: argparse.Namespace) -> int:
    from .onebox.control_client import OneboxControl

    status = OneboxControl(args.dir).status()
    print(json.dumps(status, indent=2), flush=True)
    if status["partition_count"] is None:  # the nodes are known; the partitions are not
        meta = next(n for n in status["nodes"] if n["addr"] == status["meta"])
        _err(f"error: meta {status['meta']} ({meta['name']}, {meta['state']}) did not answer "
             "the config query: partitions unknown")
        return EXIT_RUNTIME
    return EXIT_OK


def _onebox_stop(args: argparse.Namespace) -> int:
    from .onebox.control_client import OneboxControl

    if OneboxControl(args.dir).stop():
        _err(f"onebox in {args.dir} stopped")
    else:
        _err(f"no onebox supervisor was running in {args.dir}")
    return EXIT_OK


def _onebox_node_command(args: argparse.Namespace) -> int:
    from .errors import NodeCrashed
    from .onebox.control_client import OneboxControl

    try:
        applied = getattr(OneboxControl(args.dir), args.command)(args.node)
    except NodeCrashed as exc:  # reported before acting: the command was not carried out
        _err(f"error: {args.command} {args.node} not done: {exc}")
        return EXIT_RUNTIME
    # instants are CLOCK_MONOTONIC seconds in the supervisor, right at the signal / READY
    when = [f"{label} at {t:.6f}" for label, t in (("signalled", applied.t_signal),
                                                   ("ready", applied.t_ready)) if t is not None]
    _err(f"{args.command} {args.node}: now {applied.state} (pid {applied.pid})"
         + (f"; {', '.join(when)} (monotonic s)" if when else ""))
    return EXIT_OK


def _add_onebox(sub: argparse._SubParsersAction) -> None:
    from .onebox.spec import DEFAULT_META_PORT, DEFAULT_REPLICA_BASE_PORT, FDConfig

    onebox = sub.add_parser(
        "onebox", help="run the embedded cluster (real processes on 127.0.0.1) in the background",
        description="An embedded Pegasus cluster: one meta and N replica servers on "
                    "127.0.0.1, owned by a background supervisor that the other commands "
                    "reach through <dir>/control.sock.", epilog=EXIT_CODES_HELP)
    cmds = onebox.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dir_help = "onebox directory: node data, logs, control socket (default: ./onebox)"

    start = cmds.add_parser(
        "start", help="start a supervisor in the background; prints the meta host:port",
        description="Start a supervisor and its nodes in the background, wait until every "
                    "partition has a primary and all its secondaries, then print only the "
                    "meta host:port on stdout (progress goes to stderr). Old node data in "
                    "--dir is wiped; the supervisor logs to <dir>/supervisor.log.",
        epilog=EXIT_CODES_HELP)
    start.add_argument("--dir", default="onebox", help=dir_help)
    start.add_argument("--replica-nodes", type=int, default=3, metavar="N",
                       help="replica server processes (default 3)")
    start.add_argument("--partitions", type=int, default=8, metavar="P",
                       help="partitions of table 'temp', a power of two (default 8)")
    start.add_argument("--meta-port", type=int, default=DEFAULT_META_PORT, metavar="M",
                       help=f"meta server port (default {DEFAULT_META_PORT})")
    start.add_argument("--replica-port", type=int, default=DEFAULT_REPLICA_BASE_PORT,
                       metavar="R", help="first replica port; replica i listens on R+i-1 "
                                         f"(default {DEFAULT_REPLICA_BASE_PORT})")
    defaults = FDConfig()
    for name, value, what in (
            ("beacon", defaults.beacon_s, "interval between a replica's beacons"),
            ("check", defaults.check_s, "interval of the meta's liveness check"),
            ("lease", defaults.lease_s, "a primary stops serving this long after its last "
                                        "acknowledged beacon"),
            ("grace", defaults.grace_s, "the meta declares a node dead after this long "
                                        "without beacons; must exceed the lease")):
        start.add_argument(f"--fd-{name}", type=float, default=value, metavar="S",
                           help=f"failure detector: {what}, seconds (default {value}, "
                                "Pegasus's own)")
    start.add_argument("--drop-expired", action="store_true",
                       help="replica nodes drop a client request unanswered once it waited in "
                            "their queue longer than its header's client_timeout (rDSN's "
                            "rpc_request_dropped_before_execution_when_timeout; off by "
                            "default, as in Pegasus's shipped config)")
    start.add_argument("--start-timeout", type=float, default=60.0, metavar="S",
                       help="seconds to become healthy before giving up (default 60)")
    start.set_defaults(func=_onebox_start)

    status = cmds.add_parser(
        "status", help="print the cluster status as JSON",
        description="Print {dir, supervisor_pid, meta, app_id, partition_count, healthy, "
                    "nodes: [{name, addr, pid, state, dropped_expired}], partitions: [{pidx, "
                    "ballot, primary, secondaries, last_committed_decree}]} on stdout "
                    "(dropped_expired: requests a replica dropped as expired, see "
                    "start --drop-expired; null when unknown). If the meta is dead, "
                    "paused or not answering, the JSON still shows the nodes (partitions "
                    "empty, app_id and partition_count null) and the exit code is 3.",
        epilog=EXIT_CODES_HELP)
    status.add_argument("--dir", default="onebox", help=dir_help)
    status.set_defaults(func=_onebox_status)

    stop = cmds.add_parser(
        "stop", help="stop the supervisor and every node",
        description="Stop the supervisor and every node. A supervisor that does not answer "
                    "(hung, paused) is signalled: SIGTERM, then SIGKILL. Stopping a dir with "
                    "no supervisor is not an error.", epilog=EXIT_CODES_HELP)
    stop.add_argument("--dir", default="onebox", help=dir_help)
    stop.set_defaults(func=_onebox_stop)

    verbs = {"kill": "SIGKILL a node's process group (a crash)",
             "pause": "SIGSTOP a node's process group (a hang, connections stay open)",
             "resume": "SIGCONT a paused node",
             "restart": "stop a node if alive (SIGTERM) and start it again with its data"}
    for verb, help in verbs.items():
        p = cmds.add_parser(verb, help=help, epilog=EXIT_CODES_HELP,
                            description=help + ", through the supervisor. Reports on stderr the "
                            "node's new state and pid, and the CLOCK_MONOTONIC instants (taken "
                            "in the supervisor) of the signal and, for restart, of READY.")
        p.add_argument("node", metavar="NODE", help="meta1, replica1, replica2, ...")
        p.add_argument("--dir", default="onebox", help=dir_help)
        p.set_defaults(func=_onebox_node_command)


# ----------------------------------------------------------------------- bench

def _delegate(module: str) -> Callable[[argparse.Namespace], int]:
    """A handler that passes the remaining arguments to ``module.main(argv)``."""

    def run(args: argparse.Namespace) -> int:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                _err(f"{module} is not part of this build yet")
                return EXIT_USAGE
            raise
        return int(mod.main(args.extra) or 0)

    return run


def _add_bench(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="throughput benchmarks")
    kinds = bench.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, module, help in (
            ("client", "loadgen.bench.client", "codec echo ceiling vs. the client's puts"),
            ("onebox", "loadgen.bench.onebox", "acknowledged replicated writes/s of a onebox"),
            ("policies", "loadgen.bench.policies",
             "every built-in policy through kill, pauses, slow primary, reset, moved partition"),
            ("frontier", "loadgen.bench.frontier",
             "each policy's cost knob swept: client lag against meta queries/s, Pareto front"),
            ("recorder", "loadgen.bench.recorder",
             "cost of recording one outcome vs a bare record_value"),
            ("locust", "loadgen.bench.locust_users",
             "the workload's Locust users vs the bare client, ops/s in one process"),
            ("cpu", "loadgen.bench.cpu",
             "CPU per acknowledged put: our client vs the official Python client")):
        # every further argument, --help included, belongs to the delegate
        p = kinds.add_parser(kind, help=help, add_help=False)
        p.set_defaults(func=_delegate(module), passthrough=True)


# ----------------------------------------------------------------------- main

# ----------------------------------------------------------------------- run

def _run(args: argparse.Namespace) -> int:
    import locust  # noqa: F401 - monkey-patches the process first, as the locust command does

    from .runner import run

    return run.main(args.extra)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a benchmark profile: load, faults, verdict, report",
                       add_help=False)  # every further argument belongs to loadgen.runner.run
    p.set_defaults(func=_run, passthrough=True)


# ----------------------------------------------------------------------- list

def _list(args: argparse.Namespace) -> int:
    if args.what == "policies":
        from .pegasus import policies

        for info in policies.available():
            print(f"{info.name:<20} {info.summary}")
            print(f"{'':<20} models: {info.models or '-'}")
            if info.source:
                print(f"{'':<20} source: {info.source}")
            params = ", ".join(f"{k}={v!r}" for k, v in info.params.items()) or "-"
            print(f"{'':<20} params: {params}")
    elif args.what == "faults":
        from . import fault_kinds as kinds

        for kind in kinds.available():
            print(f"{kind.name:<10} {kind.usage:<18} {kind.colour:<8} {kind.description}")
    else:
        from .faults import injectors

        for info in injectors.available():
            print(f"{info.name:<10} {info.summary} (instants: {info.instants})")
    return EXIT_OK


def _add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered policies, fault kinds or injectors",
                       description="Print what is registered: retry policies (with what each "
                                   "models, its upstream source and parameters), fault kinds "
                                   "(with their timing parameter and report colour), or fault "
                                   "injectors.", epilog=EXIT_CODES_HELP)
    p.add_argument("what", choices=("policies", "faults", "injectors"))
    p.set_defaults(func=_list)


def _add_report(sub: argparse._SubParsersAction) -> None:
    for cmd, module, help in (
            ("report", "loadgen.report", "write a run folder's HTML report (RUN_DIR [--out FILE])"),
            ("compare", "loadgen.report.compare",
             "compare runs of two builds (BASE CANDIDATE, or BASE... --candidate CAND...; "
             "[--max-regression 10%%] [--html FILE]); exit 1 on a significant regression")):
        # every further argument, --help included, belongs to the delegate
        p = sub.add_parser(cmd, help=help, add_help=False)
        p.set_defaults(func=_delegate(module), passthrough=True)


# ----------------------------------------------------------------------- clients

def _clients_install(args: argparse.Namespace) -> int:
    from .adapters import venvs

    venvs.install(args.name, cache_dir=args.cache,
                  progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(venvs.venv_path(args.name, args.cache), flush=True)
    return EXIT_OK


def _clients_list(args: argparse.Namespace) -> int:
    from .adapters import venvs

    for name, env in sorted(venvs.CLIENTS.items()):
        path = venvs.venv_path(name, args.cache)
        if venvs.is_installed(name, args.cache):
            marker = venvs.read_marker(path) or {}
            state = f"installed ({env.dist} {marker.get('version', '?')})"
        else:
            state = "incomplete" if path.exists() else "not installed"
        print(f"{name:<12} {state:<32} {path}")
        print(f"{'':<12} {env.summary}")
    return EXIT_OK


def _add_clients(sub: argparse._SubParsersAction) -> None:
    clients = sub.add_parser(
        "clients", help="real client builds run through adapters: install, list",
        description="Each real client build runs as an adapter process in its own venv under "
                    "pegbench's cache ($PEGBENCH_CACHE, else $XDG_CACHE_HOME/pegbench, else "
                    "~/.cache/pegbench; then venvs/NAME).", epilog=EXIT_CODES_HELP)
    cmds = clients.add_subparsers(dest="command", required=True, metavar="COMMAND")
    install = cmds.add_parser(
        "install", help="create a client's venv (pip install; a good one is kept)",
        description="Create the venv of client NAME, pip install its pinned packages (progress "
                    "on stderr), check that it imports and mark it installed; prints its path. "
                    "A complete install is found and kept.", epilog=EXIT_CODES_HELP)
    install.add_argument("name", metavar="NAME")
    install.add_argument("--cache", metavar="DIR", help="cache folder instead of the default")
    install.set_defaults(func=_clients_install)
    listing = cmds.add_parser("list", help="known clients, installed or not, and their venvs",
                              epilog=EXIT_CODES_HELP)
    listing.add_argument("--cache", metavar="DIR", help="cache folder instead of the default")
    listing.set_defaults(func=_clients_list)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pegbench",
        description="Measure how fast Apache Pegasus clients recover when replica servers "
                    "crash or hang.", epilog=EXIT_CODES_HELP)
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    version = sub.add_parser("version", help="print versions of pegbench, python, libraries")
    version.set_defaults(func=_version)
    _add_run(sub)
    _add_onebox(sub)
    _add_bench(sub)
    _add_report(sub)
    _add_list(sub)
    _add_clients(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``pegbench`` command; returns its exit code."""
    parser = build_parser()
    try:  # argparse exits 2 on usage errors (0 for --help): return that code instead
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "passthrough", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        return int(exc.code or 0)
    args.extra = extra
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except ConfigError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except PegbenchError as exc:  # ClusterError, NodeCrashed, ...
        _err(f"error: {exc}")
        return EXIT_RUNTIME
    except Exception:  # noqa: BLE001 - a bug: say so, never exit 1 ("verdict failed")
        traceback.print_exc()
        _err("error: internal error (the traceback above is a bug in pegbench)")
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
