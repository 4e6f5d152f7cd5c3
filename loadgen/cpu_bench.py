"""CPU benchmark: CPU time per acknowledged put, our client against the official Python client.

One server (the test cluster, ``python -m loadgen.pegasus.testing``, started as ``pegbench
bench client`` does) and two writer processes against it, each doing puts one at a time
(each waits for its reply before the next is sent):

* **ours** — the path the benchmark's Locust users take: a :class:`~loadgen.workload.Workload`
  (recorder as the client's observer, durability ledger, value maker) and an
  :class:`~loadgen.driver.OpDriver` that launches each op **in a greenlet of its own**
  (:meth:`~loadgen.driver.OpDriver.launch`, as its open-loop arrivals are launched); only
  Locust's own request statistics are left out (``fire`` counts acknowledgements).
  ``python -m loadgen.cpu_bench --child ...``.
* **official** — pypegasus3 (the Python 3 port of Apache Pegasus's Python client, on
  Twisted), ``scripts/official_writer.py`` run by the official client's own virtual
  environment (``bash scripts/official_client_venv.sh`` sets it up).

Both start once, open the table and do ``--warmup`` puts; then ``--rounds`` rounds follow,
in each of which one writer and then the other does a batch of ``--ops`` puts (who goes first
alternates). Each writer measures its own CPU time (user + sys, ``resource.getrusage``) over
each batch, so start-up and imports never count, and the two batches of a round run within
about a second of each other: a host whose speed drifts (a shared VM) moves both alike. The
figures are the medians over rounds of each writer's µs per acknowledged put and of the
round's ratio ours ÷ official (target: at most 0.5). Run as ``pegbench bench cpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import statistics
import subprocess
import sys
import tempfile
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
#: Wall-clock bounds on a writer: start-up with its warm-up, and one batch, plus per put.
_START_TIMEOUT_S, _BATCH_TIMEOUT_S, _PER_OP_TIMEOUT_S = 60.0, 10.0, 0.05


def default_official_python() -> Path:
    """``$PEGBENCH_OFFICIAL_PYTHON``, else the venv the setup script makes by default."""
    return Path(os.environ.get(OFFICIAL_PYTHON_ENV) or DEFAULT_OFFICIAL_PYTHON)


def official_available(python: Path) -> bool:
    """Whether ``python`` exists and the writer script is there to run."""
    return python.is_file() and os.access(python, os.X_OK) and OFFICIAL_WRITER.is_file()


def _rusage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def _emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------- our writer

def ours_writer(meta: str, warmup: int, value_bytes: int, key_space: int, policy: str,
                run_id: str, profile: str | None = None, rate: float = 0.0) -> int:
    """Our side (runs in the child, the protocol of ``scripts/official_writer.py``): open the
    table, ``warmup`` puts, ``{"ready": ...}``; then a batch of N puts per line ``N`` read
    from stdin, each launched as an open-loop arrival is (:meth:`OpDriver.launch`: a
    greenlet of its own) and awaited, and its CPU time as a JSON line."""
    import gevent

    from .driver import OpDriver
    from .workload import Workload, WorkloadSettings

    settings = WorkloadSettings(
        meta=(meta,), policies=(policy,), users=1, rate_per_user=1.0, warmup_s=0,
        op_timeout_ms=5000, key_space=key_space, value_bytes=(value_bytes, value_bytes),
        mix={"put": 1.0}, max_inflight=1, run_id=run_id)
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
    clock, launch = time.monotonic, driver.launch
    sent = [0]

    def puts(n: int) -> None:
        i = sent[0]
        if not rate:
            for i in range(i, i + n):   # as OpDriver.step launches an arrival; then await it
                launch("put", clock(), i % key_space).wait()
        else:   # a Locust user's open loop: sleep until each arrival is due, launch it
            interval, due = 1.0 / rate, clock()
            for i in range(i, i + n):
                due += interval
                launch("put", clock(), i % key_space).wait()
                gevent.sleep(max(0.0, due - clock()))
        sent[0] += n

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU time: preemption is not ours
    try:
        puts(warmup)
        if not acked[0] and warmup:
            _emit({"error": f"no warm-up put was acknowledged: {errors}"})
            return 3
        _emit({"ready": True, "client": f"pegbench ({policy}; OpDriver: a greenlet per op, "
                                        "recorder, ledger)", "runtime": "gevent"})
        while True:
            line = sys.stdin.readline().strip()   # blocks the hub between batches
            if not line or line == "quit":
                return 0
            n = int(line)
            acked[0] = 0
            errors.clear()
            user0, sys0 = _rusage()
            wall0 = time.monotonic()
            if profiler is not None:
                profiler.enable()
            puts(n)
            if profiler is not None:
                profiler.disable()
            wall1 = time.monotonic()
            user1, sys1 = _rusage()
            _emit({"ops": n, "ok": acked[0], "user_s": user1 - user0, "sys_s": sys1 - sys0,
                   "cpu_s": (user1 - user0) + (sys1 - sys0), "wall_s": wall1 - wall0,
                   "errors": list(errors)})
    finally:
        driver.close()
        workload.stop_test()
        if profiler is not None:
            profiler.dump_stats(profile)


# ---------------------------------------------------------------------------- the parent

class _Writer:
    """One writer process, driven a batch at a time over its stdin and stdout."""

    def __init__(self, side: str, cmd: list[str]):
        self.side = side
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, bufsize=0)
        self._buf = b""
        self.about: dict[str, Any] = {}

    def start(self) -> None:
        """Wait for the writer's warm-up; raises RuntimeError if it fails."""
        self.about = self._line(_START_TIMEOUT_S)

    def batch(self, n: int) -> dict[str, Any]:
        """``n`` puts; the writer's figures with ``us_per_op`` (raises RuntimeError)."""
        self._proc.stdin.write(b"%d\n" % n)
        self._proc.stdin.flush()
        result = self._line(_BATCH_TIMEOUT_S + _PER_OP_TIMEOUT_S * n)
        if not result.get("ok"):
            raise RuntimeError(f"{self.side} writer got no put acknowledged: {result.get('errors')}")
        result["us_per_op"] = result["cpu_s"] / result["ok"] * 1e6
        return result

    def close(self) -> None:
        """Ask the writer to quit; kill it if it does not."""
        try:
            self._proc.stdin.write(b"quit\n")
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()

    def _line(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        out = self._proc.stdout
        while b"\n" not in self._buf:   # bounded by the deadline and by EOF
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(out.fileno(), 65536) if ready else b""
            if not chunk:
                why = "timed out" if not ready else f"exited {self._proc.poll()}"
                raise RuntimeError(f"{self.side} writer {why}: {self._stderr_tail()}")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        result = json.loads(line)
        if "error" in result:
            raise RuntimeError(f"{self.side} writer: {result['error']}")
        return result

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return " | ".join(self._stderr.read().decode(errors="replace").strip().splitlines()[-3:])


def _commands(meta: str, args: argparse.Namespace, official_python: Path | None,
              profile: str | None = None) -> dict[str, list[str]]:
    """The writers' command lines. Both write the same keys: our driver's, one user's
    ``<run id>/<policy>/local/0/<index>`` (index in the key space), sort key ``v``, and
    values of the same size, so the two clients hash and encode the same bytes."""
    from .workload import new_run_id

    run_id = new_run_id()
    common = ["--meta", meta, "--warmup", str(args.warmup), "--value-bytes",
              str(args.value_bytes), "--key-space", str(args.key_space), "--rate", str(args.rate)]
    cmds = {"ours": [sys.executable, "-m", "loadgen.cpu_bench", "--child", *common,
                     "--policy", args.policy, "--run-id", run_id]
                    + (["--profile", profile] if profile else [])}
    if official_python is not None:
        cmds["official"] = [str(official_python), str(OFFICIAL_WRITER), *common,
                            "--key-prefix", f"{run_id}/{args.policy}/local/0/"]
    return cmds


def measure(meta: str, args: argparse.Namespace, official_python: Path | None,
            progress=print) -> dict[str, Any]:
    """Start the writers, run the rounds, stop them; the summary as plain data (raises
    RuntimeError if a writer fails)."""
    writers = {side: _Writer(side, cmd)
               for side, cmd in _commands(meta, args, official_python).items()}
    rounds: list[dict[str, Any]] = []
    try:
        for w in writers.values():
            w.start()
        sides = list(writers)
        for r in range(max(1, args.rounds)):
            order = sides if r % 2 == 0 else sides[::-1]   # who goes first alternates
            row: dict[str, Any] = {side: writers[side].batch(args.ops) for side in order}
            if "official" in row:
                row["ratio"] = row["ours"]["us_per_op"] / row["official"]["us_per_op"]
            rounds.append(row)
            progress(format_round(r + 1, row))
    finally:
        for w in writers.values():
            w.close()
    summary: dict[str, Any] = {
        "ops_per_round": args.ops, "warmup": args.warmup, "value_bytes": args.value_bytes,
        "policy": args.policy, "rounds": rounds, "target_ratio": TARGET_RATIO,
        "ours_us_per_op": statistics.median(r["ours"]["us_per_op"] for r in rounds),
        "ours_client": writers["ours"].about["client"]}
    if "official" in writers:
        about = writers["official"].about
        summary["official_us_per_op"] = statistics.median(r["official"]["us_per_op"] for r in rounds)
        summary["official_client"] = f"{about['client']} ({about['runtime']})"
        summary["ratio"] = statistics.median(r["ratio"] for r in rounds)
    return summary


def profile_ours(meta: str, args: argparse.Namespace, path: str) -> None:
    """One more run of our writer alone, under cProfile (CPU time), into ``path``."""
    writer = _Writer("ours (profiled)", _commands(meta, args, None, path)["ours"])
    try:
        writer.start()
        writer.batch(args.ops * args.rounds)
    finally:
        writer.close()


def _side(res: dict[str, Any]) -> str:
    return (f"{res['us_per_op']:6.1f} µs/put (user {res['user_s'] / res['ok'] * 1e6:5.1f} + "
            f"sys {res['sys_s'] / res['ok'] * 1e6:5.1f}; {res['ok']}/{res['ops']} acked)")


def format_round(n: int, row: dict[str, Any]) -> str:
    """One round's line."""
    line = f"round {n:2d}: ours {_side(row['ours'])}"
    if "official" in row:
        line += f"   official {_side(row['official'])}   ratio {row['ratio']:.2f}"
    return line


def format_summary(summary: dict[str, Any]) -> list[str]:
    """The closing lines: each side's median µs of CPU per acknowledged put, and the ratio."""
    n = len(summary["rounds"])
    lines = [f"ours     : {summary['ours_us_per_op']:7.1f} µs CPU per acknowledged put "
             f"(median of {n} rounds; {summary['ours_client']})"]
    if "ratio" in summary:
        lo = min(r["ratio"] for r in summary["rounds"])
        hi = max(r["ratio"] for r in summary["rounds"])
        lines += [f"official : {summary['official_us_per_op']:7.1f} µs CPU per acknowledged put "
                  f"(median of {n} rounds; {summary['official_client']})",
                  f"ratio    : {summary['ratio']:7.2f}  ours ÷ official, median of the rounds' "
                  f"ratios ({lo:.2f}-{hi:.2f}; target <= {TARGET_RATIO})"]
    else:
        lines.append("official : not measured (--ours-only)")
    return lines


def _child_main(args: argparse.Namespace) -> int:
    return ours_writer(args.meta, args.warmup, args.value_bytes, args.key_space, args.policy,
                       args.run_id, args.profile, args.rate)


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the figures; 1 if the ratio is above ``--max-ratio``, 2 if
    the official client is not set up (and ``--ours-only`` not given), 3 if the server or a
    writer failed."""
    parser = argparse.ArgumentParser(prog="pegbench bench cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=400, help="puts per writer and round")
    parser.add_argument("--rounds", type=int, default=15,
                        help="rounds (one batch of each writer; who goes first alternates)")
    parser.add_argument("--warmup", type=int, default=500, help="puts before the first round")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--key-space", type=int, default=1000, help="keys each writer cycles over")
    parser.add_argument("--policy", default="failover", help="our client's policy")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="puts/s of each writer, as a Locust user's open loop (default 0: "
                             "back to back)")
    parser.add_argument("--official-python", type=Path, default=None,
                        help=f"python of the official client's venv (default ${OFFICIAL_PYTHON_ENV}, "
                             f"else {DEFAULT_OFFICIAL_PYTHON.relative_to(_REPO)})")
    parser.add_argument("--ours-only", action="store_true",
                        help="measure our writer alone (no official client needed)")
    parser.add_argument("--max-ratio", type=float, default=None,
                        help=f"exit 1 if ours/official is above this (target {TARGET_RATIO})")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--profile", metavar="FILE",
                        help="then run our writer once more, alone, under cProfile (CPU time), "
                             "into FILE")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--meta", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child_main(args)
    if args.ops < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--ops and --rounds must be at least 1, --warmup at least 0")

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
        print(f"{args.rounds} rounds of {args.ops} puts of {args.value_bytes} bytes per writer, "
              f"one at a time, after {args.warmup} warm-up puts; CPU = user + sys of the "
              "writer process", flush=True)
        summary = measure(meta, args, official_python, progress=lambda s: print(s, flush=True))
        if args.profile:
            profile_ours(meta, args, args.profile)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        proc.kill()
        proc.wait()
    for line in format_summary(summary):
        print(line)
    if args.profile:
        print(f"profile of our writer (a run of its own, CPU time): {args.profile}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    ratio = summary.get("ratio")
    return 1 if args.max_ratio is not None and ratio is not None and ratio > args.max_ratio else 0


if __name__ == "__main__":
    raise SystemExit(main())
