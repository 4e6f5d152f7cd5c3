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
from importlib import metadata
from typing import Callable

from . import __version__
from .errors import ConfigError, PegbenchError

EXIT_OK, EXIT_VERDICT, EXIT_USAGE, EXIT_RUNTIME, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
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

def _onebox_start(args: argparse.Namespace) -> int:
    from .onebox import control
    from .onebox.spec import FDConfig, OneboxSpec

    base = args.replica_port
    for flag, port in (("--meta-port", args.meta_port),
                       ("--replica-port", base + args.replica_nodes - 1)):
        if not 0 < port < 65536:
            raise ConfigError("command line", flag, f"ports within 1-65535, got {port}")
    fd = FDConfig(beacon_s=args.fd_beacon, check_s=args.fd_check, lease_s=args.fd_lease,
                  grace_s=args.fd_grace)
    spec = OneboxSpec(dir=args.dir, replica_nodes=args.replica_nodes,
                      partitions=args.partitions, meta_port=args.meta_port,
                      replica_ports=tuple(range(base, base + args.replica_nodes)), fd=fd)
    _err(f"starting onebox in {args.dir} (meta {spec.meta_addr}, "
         f"{spec.replica_nodes} replica nodes); waiting until healthy ...")
    print(control.start_background(spec, start_timeout_s=args.start_timeout), flush=True)
    return EXIT_OK


def _onebox_status(args: argparse.Namespace) -> int:
    from .onebox import control

    print(json.dumps(control.request(args.dir, "status"), indent=2))
    return EXIT_OK


def _onebox_stop(args: argparse.Namespace) -> int:
    from .onebox import control

    if control.stop(args.dir):
        _err(f"onebox in {args.dir} stopped")
    else:
        _err(f"no onebox supervisor was running in {args.dir}")
    return EXIT_OK


def _onebox_node_command(args: argparse.Namespace) -> int:
    from .onebox import control

    node = control.request(args.dir, args.command, args.node)
    _err(f"{args.command} {args.node}: now {node['state']} (pid {node['pid']})")
    return EXIT_OK


def _add_onebox(sub: argparse._SubParsersAction) -> None:
    from .onebox.spec import DEFAULT_META_PORT, DEFAULT_REPLICA_BASE_PORT, FDConfig

    onebox = sub.add_parser("onebox", help="run the embedded cluster in the background")
    cmds = onebox.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dir_help = "onebox directory (default: ./onebox)"

    start = cmds.add_parser("start", help="start a supervisor in the background; prints the "
                                          "meta host:port once healthy")
    start.add_argument("--dir", default="onebox", help=dir_help)
    start.add_argument("--replica-nodes", type=int, default=3, metavar="N")
    start.add_argument("--partitions", type=int, default=8, metavar="P",
                       help="partitions of the table (a power of two)")
    start.add_argument("--meta-port", type=int, default=DEFAULT_META_PORT, metavar="M")
    start.add_argument("--replica-port", type=int, default=DEFAULT_REPLICA_BASE_PORT,
                       metavar="R", help="first replica port; the others follow")
    defaults = FDConfig()
    for name, value in (("beacon", defaults.beacon_s), ("check", defaults.check_s),
                        ("lease", defaults.lease_s), ("grace", defaults.grace_s)):
        start.add_argument(f"--fd-{name}", type=float, default=value, metavar="S",
                           help=f"failure detector {name}, seconds (default {value})")
    start.add_argument("--start-timeout", type=float, default=60.0, metavar="S",
                       help="seconds to become healthy (default 60)")
    start.set_defaults(func=_onebox_start)

    status = cmds.add_parser("status", help="print the cluster status as JSON")
    status.add_argument("--dir", default="onebox", help=dir_help)
    status.set_defaults(func=_onebox_status)

    stop = cmds.add_parser("stop", help="stop the supervisor and every node")
    stop.add_argument("--dir", default="onebox", help=dir_help)
    stop.set_defaults(func=_onebox_stop)

    verbs = {"kill": "SIGKILL a node (a crash)", "pause": "SIGSTOP a node (a hang)",
             "resume": "SIGCONT a paused node",
             "restart": "stop a node if alive and start it again with its data"}
    for verb, help in verbs.items():
        p = cmds.add_parser(verb, help=help)
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
            ("client", "loadgen.pegasus.bench", "codec echo ceiling vs. the client's puts"),
            ("onebox", "loadgen.onebox.bench", "acknowledged replicated writes/s of a onebox")):
        # every further argument, --help included, belongs to the delegate
        p = kinds.add_parser(kind, help=help, add_help=False)
        p.set_defaults(func=_delegate(module), passthrough=True)


# ----------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pegbench",
        description="Measure how fast Apache Pegasus clients recover when replica servers "
                    "crash or hang.")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    version = sub.add_parser("version", help="print versions of pegbench, python, libraries")
    version.set_defaults(func=_version)
    _add_onebox(sub)
    _add_bench(sub)
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


if __name__ == "__main__":
    sys.exit(main())
