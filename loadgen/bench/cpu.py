"""CPU benchmark: CPU time per acknowledged put, our client against the official Python client.

One server (the test cluster, ``python -m loadgen.testing.cluster``, started as ``pegbench
bench client`` does) and writer processes against it, each doing puts one at a time (the
next put is sent once the reply to the last is in):

* **ours** — the path the benchmark's Locust users take: a :class:`~loadgen.load.workload.Workload`
  (recorder as the client's observer, durability ledger, value maker) and an
  :class:`~loadgen.load.driver.OpDriver` that launches each op **in a greenlet of its own**
  (:meth:`~loadgen.load.driver.OpDriver.launch`, as its open-loop arrivals are launched); only
  Locust's own request statistics are left out (``fire`` counts acknowledgements).
  Back to back, the end of each put launches the next, as the official writer's loop sends
  its next put when a reply resumes it; at ``--rate``, a loop sleeps until each arrival is
  due, launches it and waits for its end. ``python -m loadgen.bench.cpu --child ...``.
* **client** — the same greenlet per op around a bare client's put (no observer).
* **official** — pypegasus3 (the Python 3 port of Apache Pegasus's Python client, on
  Twisted), ``scripts/official_writer.py`` run by the official client's own virtual
  environment (``pegbench clients install pypegasus`` sets it up).

All start once, open the table and do ``--warmup`` puts; then ``--rounds`` rounds follow,
in each of which each writer in turn does a batch of ``--ops`` puts (who goes first
rotates). Each writer measures its own CPU time (user + sys, ``resource.getrusage``) over
each batch, so start-up and imports never count, and the two batches of a round run within
about a second of each other: a host whose speed drifts (a shared VM) moves both alike. The
figures are the medians over rounds of each writer's µs per acknowledged put and of the
round's ratios ours ÷ official and client ÷ official (target for the latter: at most 0.5).
Run as ``pegbench bench cpu``.
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
_REPO = Path(__file__).resolve().parents[2]
#: The official side's writer (outside loadgen/: it imports Twisted and pypegasus, which
#: pegbench does not depend on).
OFFICIAL_WRITER = _REPO / "scripts" / "official_writer.py"
#: The client environment ``pegbench clients install pypegasus`` makes (its pypegasus adapter's).
OFFICIAL_CLIENT = "pypegasus"
OFFICIAL_PYTHON_ENV = "PEGBENCH_OFFICIAL_PYTHON"
#: Wall-clock bounds on a writer: start-up with its warm-up, and one batch, plus per put.
_START_TIMEOUT_S, _BATCH_TIMEOUT_S, _PER_OP_TIMEOUT_S = 60.0, 10.0, 0.05


def default_official_python() -> Path:
    """``$PEGBENCH_OFFICIAL_PYTHON``, else the python of ``pegbench clients install pypegasus``."""
    from ..adapters.venvs import venv_path

    return Path(os.environ.get(OFFICIAL_PYTHON_ENV) or venv_path(OFFICIAL_CLIENT) / "bin" / "python")


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

#: Our writer's two paths (``--path``): what a Locust user of the benchmark runs per put, or
#: the client alone with the open-loop arrivals' greenlet per op.
PATH_DRIVER, PATH_CLIENT = "driver", "client"
_PATH_LABELS = {PATH_DRIVER: "OpDriver: a greenlet per op, recorder, ledger",
                PATH_CLIENT: "the client alone, OpDriver's greenlet per op, no observer"}


def ours_writer(meta: str, warmup: int, value_bytes: int, key_space: int, policy: str,
                run_id: str, profile: str | None = None, rate: float = 0.0,
                path: str = PATH_DRIVER) -> int:
    """Our side (runs in the child, the protocol of ``scripts/official_writer.py``): open the
    table, ``warmup`` puts, ``{"ready": ...}``; then a batch of N puts per line ``N`` read
    from stdin, each launched as an open-loop arrival is (:meth:`OpDriver.launch`: a
    greenlet of its own) once the last has ended, and its CPU time as a JSON line. ``path`` client: each
    of those greenlets does a bare :class:`~loadgen.pegasus.Client`'s put (no observer),
    instead of the driver's op (recorder, ledger, request event)."""
    import gevent
    from gevent.hub import Waiter

    from ..config.schema import OpMix, WorkloadConfig
    from ..errors import PegasusError
    from ..load.driver import OpDriver
    from ..load.durability import PUT_SORT_KEY
    from ..load.workload import Workload, WorkloadSettings
    from ..pegasus import Client

    class BarePuts(OpDriver):
        """OpDriver's greenlet per op around a bare client's put."""

        def __init__(self, *args: Any):
            super().__init__(*args)
            self.client = Client([meta], policy=policy, op_timeout_ms=5000)
            self.bare = self.client.open_table("temp")
            self.value = b"v" * value_bytes

        def run(self, op: str, t_intended: float, idx: int) -> None:
            try:
                self.bare.put(self.prefix + b"%d" % idx, PUT_SORT_KEY, self.value)
            except PegasusError as exc:
                self.fire(exception=exc)
            else:
                self.fire(exception=None)

    settings = WorkloadSettings(
        meta=(meta,), policies=(policy,), run_id=run_id,
        workload=WorkloadConfig(users=1, rate_per_user=1.0, warmup_s=0, op_timeout_ms=5000,
                                key_space=key_space, value_bytes=(value_bytes, value_bytes),
                                mix=OpMix(put=1.0, multi_put=0.0, get=0.0), max_inflight=1))
    workload = Workload(settings)
    workload.start_test(monitor=False)
    acked = [0]
    errors: list[str] = []

    driver = (BarePuts if path == PATH_CLIENT else OpDriver)(workload, policy, lambda **_: None)
    clock, launch, loop = time.monotonic, driver.launch, gevent.get_hub().loop
    sent = [0]
    batch: dict[str, Any] = {"left": 0}   # and "waiter": the batch's, while it runs

    def fire(**request: Any) -> None:  # Locust's request event, minus Locust's statistics
        if request["exception"] is None:
            acked[0] += 1
        elif len(errors) < 3:
            errors.append(str(request["exception"]))
        if batch["left"]:   # back to back: the end of one put launches the next
            batch["left"] -= 1
            launch("put", clock(), sent[0] % key_space)
            sent[0] += 1
        elif "waiter" in batch:   # the batch's last put: wake the batch (from the hub)
            loop.run_callback(batch.pop("waiter").switch, None)

    driver.fire = fire

    def puts(n: int) -> None:
        if not n:
            return
        if not rate:
            # As the official writer's loop does (each reply resumes it, and it sends the next
            # put): each put ends in its greenlet, which launches the next as an arrival.
            waiter = batch["waiter"] = Waiter()
            batch["left"] = n - 1
            launch("put", clock(), sent[0] % key_space)
            sent[0] += 1
            waiter.get()
            return
        # A Locust user's open loop: sleep until each arrival is due, launch it, and (one
        # put at a time, as the official writer) wait for its end.
        interval, due = 1.0 / rate, clock()
        for _ in range(n):
            due += interval
            waiter = Waiter()
            launch("put", clock(), sent[0] % key_space).rawlink(waiter.switch)
            sent[0] += 1
            waiter.get()
            gevent.sleep(max(0.0, due - clock()))

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU time: preemption is not ours
    try:
        puts(warmup)
        if not acked[0] and warmup:
            _emit({"error": f"no warm-up put was acknowledged: {errors}"})
            return 3
        _emit({"ready": True, "client": f"pegbench, {policy}; {_PATH_LABELS[path]}",
               "runtime": f"gevent {gevent.__version__}"})
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
        if path == PATH_CLIENT:
            driver.client.close()
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


#: The writers, in the order of the first round: ours on the benchmark users' path, ours as
#: the client alone, the official client.
SIDES = ("ours", "client", "official")


def _commands(meta: str, args: argparse.Namespace, official_python: Path | None,
              profile: str | None = None) -> dict[str, list[str]]:
    """The writers' command lines. All write the same keys: our driver's, one user's
    ``<run id>/<policy>/local/0/<index>`` (index in the key space), sort key ``v``, and
    values of the same size, so the clients hash and encode the same bytes."""
    from ..load.workload import new_run_id

    run_id = new_run_id()
    common = ["--meta", meta, "--warmup", str(args.warmup), "--value-bytes",
              str(args.value_bytes), "--key-space", str(args.key_space), "--rate", str(args.rate)]
    ours = [sys.executable, "-m", "loadgen.bench.cpu", "--child", *common,
            "--policy", args.policy, "--run-id", run_id]
    cmds = {"ours": ours + (["--profile", profile] if profile else [])}
    if profile is None:
        cmds["client"] = ours + ["--path", PATH_CLIENT]
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
            order = sides[r % len(sides):] + sides[:r % len(sides)]   # who goes first turns
            row: dict[str, Any] = {side: writers[side].batch(args.ops) for side in order}
            if "official" in row:
                row["ratio"] = row["ours"]["us_per_op"] / row["official"]["us_per_op"]
                row["ratio_client"] = row["client"]["us_per_op"] / row["official"]["us_per_op"]
            rounds.append(row)
            progress(format_round(r + 1, row))
    finally:
        for w in writers.values():
            w.close()
    summary: dict[str, Any] = {
        "ops_per_round": args.ops, "warmup": args.warmup, "value_bytes": args.value_bytes,
        "rate": args.rate, "policy": args.policy, "rounds": rounds, "target_ratio": TARGET_RATIO}
    for side in writers:
        summary[f"{side}_us_per_op"] = statistics.median(r[side]["us_per_op"] for r in rounds)
        about = writers[side].about
        summary[f"{side}_about"] = f"{about['client']} ({about['runtime']})"
    if "official" in writers:
        summary["ratio"] = statistics.median(r["ratio"] for r in rounds)
        summary["ratio_client"] = statistics.median(r["ratio_client"] for r in rounds)
    return summary


def profile_ours(meta: str, args: argparse.Namespace, path: str) -> None:
    """One more run of our writer alone (the users' path), under cProfile (CPU time)."""
    writer = _Writer("ours (profiled)", _commands(meta, args, None, path)["ours"])
    try:
        writer.start()
        writer.batch(args.ops * args.rounds)
    finally:
        writer.close()


def _side(res: dict[str, Any]) -> str:
    return (f"{res['us_per_op']:6.1f} (u {res['user_s'] / res['ok'] * 1e6:3.0f} + "
            f"s {res['sys_s'] / res['ok'] * 1e6:3.0f})")


def format_round(n: int, row: dict[str, Any]) -> str:
    """One round's line: each writer's µs of CPU per acknowledged put (user + sys)."""
    line = f"round {n:2d}:" + "".join(f"  {side} {_side(row[side])}" for side in SIDES
                                     if side in row)
    if "official" in row:
        line += f"  ratios {row['ratio']:.2f} {row['ratio_client']:.2f}"
    return line


def format_summary(summary: dict[str, Any]) -> list[str]:
    """The closing lines: each writer's median µs of CPU per acknowledged put, the ratios."""
    rounds = summary["rounds"]
    lines = [f"{side:8s} : {summary[f'{side}_us_per_op']:7.1f} µs CPU per acknowledged put "
             f"(median of {len(rounds)} rounds; {summary[f'{side}_about']})"
             for side in SIDES if f"{side}_us_per_op" in summary]
    if "ratio" not in summary:
        return lines + ["official : not measured (--ours-only)"]
    for key, what in (("ratio", "ours ÷ official (the benchmark users' path)"),
                      ("ratio_client", "client ÷ official (the client, a greenlet per op)")):
        lo, hi = min(r[key] for r in rounds), max(r[key] for r in rounds)
        lines.append(f"{key:12s}: {summary[key]:5.2f}  {what}, median of the rounds' ratios "
                     f"({lo:.2f}-{hi:.2f})")
    lines.append(f"target       : ratio_client <= {TARGET_RATIO} (issue 14: our client's CPU per "
                 "put with the arrivals' greenlet per op)")
    return lines


def _child_main(args: argparse.Namespace) -> int:
    return ours_writer(args.meta, args.warmup, args.value_bytes, args.key_space, args.policy,
                       args.run_id, args.profile, args.rate, args.path)


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
                             f"else that of `pegbench clients install {OFFICIAL_CLIENT}`)")
    parser.add_argument("--ours-only", action="store_true",
                        help="measure our writer alone (no official client needed)")
    parser.add_argument("--max-ratio", type=float, default=None,
                        help=f"exit 1 if client/official is above this (target {TARGET_RATIO})")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--profile", metavar="FILE",
                        help="then run our writer once more, alone, under cProfile (CPU time), "
                             "into FILE")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--meta", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", default="", help=argparse.SUPPRESS)
    parser.add_argument("--path", default=PATH_DRIVER, choices=(PATH_DRIVER, PATH_CLIENT),
                        help=argparse.SUPPRESS)
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
                  f"set it up with: pegbench clients install {OFFICIAL_CLIENT} "
                  "(or pass --official-python), or run with --ours-only", file=sys.stderr)
            return 2

    from ..errors import PegasusError
    from .client import start_server

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
    ratio = summary.get("ratio_client")
    return 1 if args.max_ratio is not None and ratio is not None and ratio > args.max_ratio else 0


if __name__ == "__main__":
    raise SystemExit(main())
