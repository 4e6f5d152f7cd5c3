"""``pegbench report RUN_DIR [MORE_RUN_DIR ...] [--out FILE]``: write a run folder's HTML
report; with several folders (``--out`` then names the page), the first run's report headed by
the runs' TTR and fault-phase histograms merged (a soak, a nightly series).

Exit codes (DESIGN.md): 0 written (whatever the run's verdict), 2 unreadable input or an
output that cannot be written, naming the file and what is wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..exitcodes import EXIT_OK, EXIT_USAGE
from .html import write_page
from .page import analyse, render
from .run_dir import RunInputError, load_run

REPORT_HTML = "report.html"


def write_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                 *, merge: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Render the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``),
    atomically; returns the path. ``merge``: more run folders whose histograms are merged
    with this one's in a first section. Raises RunInputError on unreadable input."""
    run = load_run(run_dir)
    model = analyse(run)
    if merge:
        model = dataclasses.replace(model, merged_with=tuple(load_run(d) for d in merge))
    page = render(model)
    return write_page(Path(out) if out is not None else run.directory / REPORT_HTML, page)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pegbench report",
        description="Write one self-contained, offline HTML report from a run folder "
                    "(results.json, timeline.json, faults.jsonl, *.hlog).",
        epilog="exit codes: 0 written, 2 unreadable input or unwritable output")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run's output folder")
    parser.add_argument("more", nargs="*", metavar="MORE_RUN_DIR",
                        help="more runs of the same profile: their TTR and fault-phase "
                             "histograms are merged with RUN_DIR's (needs --out)")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help=f"where to write the page (default: RUN_DIR/{REPORT_HTML})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns its exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on a usage error, 0 for --help
        return int(exc.code or 0)
    if args.more and args.out is None:
        print("pegbench report: error: --out: name the page when several run folders are "
              "merged (it belongs to none of them)", file=sys.stderr)
        return EXIT_USAGE
    try:
        path = write_report(args.run_dir, args.out, merge=args.more)
    except RunInputError as exc:
        print(f"pegbench report: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(path)
    return EXIT_OK
