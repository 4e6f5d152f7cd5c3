"""CPU benchmark: CPU time per acknowledged put, our client against the official Python client.

One server (the test cluster, ``python -m loadgen.pegasus.testing``, started as ``pegbench
bench client`` does) and, in turn, two writer processes against it, each doing ``--warmup``
puts and then ``--ops`` measured puts, one at a time (each waits for its reply):

* **ours** — the path the benchmark's Locust users take: a :class:`~loadgen.workload.Workload`
  (recorder as the client's observer, durability ledger, value maker) and an
  :class:`~loadgen.driver.OpDriver` whose ``run`` executes each op **in a greenlet of its
  own**, as the open-loop arrivals do; only Locust's own request statistics are left out
  (``fire`` counts acknowledgements). ``python -m loadgen.cpu_bench --child ...``.
* **official** — pypegasus3 (the Python 3 port of Apache Pegasus's Python client, on
  Twisted), ``scripts/official_writer.py`` run by the official client's own virtual
  environment (``bash scripts/official_client_venv.sh`` sets it up).

Each writer measures its own CPU time (user + sys, ``resource.getrusage``) over the measured
puts only, so interpreter start-up and imports do not count. Rounds alternate which writer
goes first; the figures are the medians over rounds, and the ratio is ours ÷ official
(target: at most 0.5). Run as ``pegbench bench cpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TARGET_RATIO = 0.5
_PARTITIONS = 8
_REPO = Path(__file__).resolve().parents[1]
#: The official side's writer (outside loadgen/: it imports Twisted and pypegasus, which
#: pegbench does not depend on).
OFFICIAL_WRITER = _REPO / "scripts" / "official_writer.py"
OFFICIAL_VENV_SCRIPT = _REPO / "scripts" / "official_client_venv.sh"
#: Where ``scripts/official_client_venv.sh`` puts the official client by default.
DEFAULT_OFFICIAL_PYTHON = _REPO / ".venv-official" / "bin" / "python"
OFFICIAL_PYTHON_ENV = "PEGBENCH_OFFICIAL_PYTHON"
#: Wall-clock bound on one writer process: start-up plus this much per op.
_CHILD_START_S, _CHILD_PER_OP_S = 60.0, 0.05


def default_official_python() -> Path:
    """``$PEGBENCH_OFFICIAL_PYTHON``, else the venv the setup script makes by default."""
    return Path(os.environ.get(OFFICIAL_PYTHON_ENV) or DEFAULT_OFFICIAL_PYTHON)


def official_available(python: Path) -> bool:
    """Whether ``python`` exists and the writer script is there to run."""
    return python.is_file() and os.access(python, os.X_OK) and OFFICIAL_WRITER.is_file()


# ---------------------------------------------------------------------------- our writer

def ours_writer(meta: str, ops: int, warmup: int, value_bytes: int, key_space: int,
                policy: str, profile: str | None = None) -> dict[str, Any]:
    """Our side (runs in the child): ``warmup`` then ``ops`` puts, one at a time, each in a
    greenlet of its own through :meth:`OpDriver.run`; the CPU time of the measured ones."""
    import gevent

    from .driver import OpDriver
    from .workload import Workload, WorkloadSettings

    settings = WorkloadSettings(
        meta=(meta,), policies=(policy,), users=1, rate_per_user=1.0, warmup_s=0,
        op_timeout_ms=5000, key_space=key_space, value_bytes=(value_bytes, value_bytes),
        mix={"put": 1.0}, max_inflight=1)
    workload = Workload(settings)
    workload.start_test(monitor=False)
    acked = [0]
    errors: list[str] = []

    def fire(**request: Any) -> None:  # Locust's request event, minus Locust's statistics
        if request["exception"] is None:
            acked[0] += 1
        elif len(errors) < 3:
            errors.append(str(request["exception"]))

    driver = OpDriver(workload, policy, fire)
    clock, spawn, run = time.monotonic, gevent.spawn, driver.run

    def puts(n: int) -> None:
        for i in range(n):
            spawn(run, "put", clock(), i % key_space).join()

    puts(warmup)
    acked[0] = 0
    errors.clear()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU time: preemption is not ours
    r0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    if profiler is not None:
        profiler.enable()
    puts(ops)
    if profiler is not None:
        profiler.disable()
    wall1, r1 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    if profiler is not None:
        profiler.dump_stats(profile)
    workload.stop_test()
    user, sys_ = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    return {"client": f"pegbench ({policy}, OpDriver: a greenlet per op, recorder, ledger)",
            "ops": ops, "ok": acked[0], "user_s": user, "sys_s": sys_, "cpu_s": user + sys_,
            "wall_s": wall1 - wall0, "errors": errors}


# ---------------------------------------------------------------------------- the parent

def _run_child(side: str, cmd: list[str], ops: int) -> dict[str, Any]:
    """Run one writer process; its JSON line (``error`` set when it failed)."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=_CHILD_START_S + _CHILD_PER_OP_S * ops)
    except subprocess.TimeoutExpired:
        return {"error": f"{side} writer timed out"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        return {"error": f"{side} writer exited {done.returncode}: {tail}"}
    result = json.loads(lines[-1])
    if not result.get("ok"):
        result.setdefault("error", f"{side} writer got no put acknowledged: {result.get('errors')}")
    else:
        result["us_per_op"] = result["cpu_s"] / result["ok"] * 1e6
    return result


def _commands(meta: str, args: argparse.Namespace, official_python: Path | None,
              profile: str | None) -> dict[str, list[str]]:
    common = ["--meta", meta, "--ops", str(args.ops), "--warmup", str(args.warmup),
              "--value-bytes", str(args.value_bytes), "--key-space", str(args.key_space)]
    cmds = {"ours": [sys.executable, "-m", "loadgen.cpu_bench", "--child", *common,
                     "--policy", args.policy] + (["--profile", profile] if profile else [])}
    if official_python is not None:
        cmds["official"] = [str(official_python), str(OFFICIAL_WRITER), *common]
    return cmds


def measure(meta: str, args: argparse.Namespace, official_python: Path | None,
            progress=print) -> dict[str, Any]:
    """Alternating rounds against the server at ``meta``; the summary as plain data."""
    rounds: list[dict[str, Any]] = []
    for r in range(max(1, args.rounds)):
        profile = args.profile if r == 0 else None   # one profiled round, kept out of the figures
        cmds = _commands(meta, args, official_python, None)
        order = list(cmds) if r % 2 == 0 else list(reversed(cmds))
        row = {side: _run_child(side, cmds[side], args.ops) for side in order}
        failed = [res["error"] for res in row.values() if "error" in res]
        if failed:
            return {"error": "; ".join(failed), "rounds": rounds}
        if "official" in row:
            row["ratio"] = row["ours"]["us_per_op"] / row["official"]["us_per_op"]
        rounds.append(row)
        progress(format_round(r + 1, row))
        if profile:
            _run_child("ours (profiled)", _commands(meta, args, None, profile)["ours"], args.ops)
    summary: dict[str, Any] = {
        "ops": args.ops, "warmup": args.warmup, "value_bytes": args.value_bytes,
        "policy": args.policy, "rounds": rounds, "target_ratio": TARGET_RATIO,
        "ours_us_per_op": statistics.median(r["ours"]["us_per_op"] for r in rounds),
        "ours_client": rounds[0]["ours"]["client"]}
    if official_python is not None:
        summary["official_us_per_op"] = statistics.median(r["official"]["us_per_op"] for r in rounds)
        summary["official_client"] = (f"{rounds[0]['official']['client']} "
                                      f"({rounds[0]['official']['runtime']})")
        summary["ratio"] = summary["ours_us_per_op"] / summary["official_us_per_op"]
    return summary


def _side(res: dict[str, Any]) -> str:
    return (f"{res['us_per_op']:7.1f} µs/put ({res['ok']}/{res['ops']} acked, "
            f"user {res['user_s'] / res['ok'] * 1e6:.0f} + sys {res['sys_s'] / res['ok'] * 1e6:.0f})")


def format_round(n: int, row: dict[str, Any]) -> str:
    """One round's line."""
    line = f"round {n}: ours {_side(row['ours'])}"
    if "official" in row:
        line += f"   official {_side(row['official'])}   ratio {row['ratio']:.2f}"
    return line


def format_summary(summary: dict[str, Any]) -> list[str]:
    """The closing lines: each side's median µs of CPU per acknowledged put, and the ratio."""
    n = len(summary["rounds"])
    lines = [f"ours     : {summary['ours_us_per_op']:7.1f} µs CPU per acknowledged put "
             f"(median of {n}; {summary['ours_client']})"]
    if "ratio" in summary:
        lines += [f"official : {summary['official_us_per_op']:7.1f} µs CPU per acknowledged put "
                  f"(median of {n}; {summary['official_client']})",
                  f"ratio    : {summary['ratio']:7.2f}  ours ÷ official (target <= {TARGET_RATIO})"]
    else:
        lines.append("official : not measured (--ours-only)")
    return lines


def _child_main(args: argparse.Namespace) -> int:
    result = ours_writer(args.meta, args.ops, args.warmup, args.value_bytes, args.key_space,
                         args.policy, args.profile)
    print(json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the figures; 1 if the ratio is above ``--max-ratio``, 2 if
    the official client is not set up (and ``--ours-only`` not given), 3 if the server or a
    writer failed."""
    parser = argparse.ArgumentParser(prog="pegbench bench cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=3000, help="measured puts per writer and round")
    parser.add_argument("--warmup", type=int, default=300, help="puts before measuring")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds (writers alternate who goes first); medians count")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--key-space", type=int, default=1000, help="keys each writer cycles over")
    parser.add_argument("--policy", default="failover", help="our client's policy")
    parser.add_argument("--official-python", type=Path, default=None,
                        help=f"python of the official client's venv (default ${OFFICIAL_PYTHON_ENV}, "
                             f"else {DEFAULT_OFFICIAL_PYTHON.relative_to(_REPO)})")
    parser.add_argument("--ours-only", action="store_true",
                        help="measure our writer alone (no official client needed)")
    parser.add_argument("--max-ratio", type=float, default=None,
                        help=f"exit 1 if ours/official is above this (target {TARGET_RATIO})")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--profile", metavar="FILE",
                        help="also run our writer once under cProfile (CPU time) into FILE")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--meta", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child_main(args)
    if args.ops < 1 or args.warmup < 0:
        parser.error("--ops must be at least 1 and --warmup at least 0")

    official_python = None
    if not args.ours_only:
        official_python = args.official_python or default_official_python()
        if not official_available(official_python):
            print(f"error: the official client is not set up ({official_python} not found); "
                  f"set it up with: bash {OFFICIAL_VENV_SCRIPT.relative_to(_REPO)} "
                  "(then pass --official-python if you chose another directory), "
                  "or run with --ours-only", file=sys.stderr)
            return 2

    from .errors import PegasusError
    from .pegasus.bench import start_server

    try:
        proc, meta, _replica = start_server(partitions=_PARTITIONS)
    except PegasusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    try:
        print(f"{args.ops} puts of {args.value_bytes} bytes per writer and round, one at a time, "
              f"after {args.warmup} warm-up puts; CPU = user + sys of the writer process",
              flush=True)
        summary = measure(meta, args, official_python, progress=lambda s: print(s, flush=True))
    finally:
        proc.kill()
        proc.wait()
    if "error" in summary:
        print(f"error: {summary['error']}", file=sys.stderr)
        return 3
    for line in format_summary(summary):
        print(line)
    if args.profile:
        print(f"profile of our writer (one extra run, CPU time): {args.profile}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    ratio = summary.get("ratio")
    return 1 if args.max_ratio is not None and ratio is not None and ratio > args.max_ratio else 0


if __name__ == "__main__":
    raise SystemExit(main())
