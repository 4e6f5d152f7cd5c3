"""The HTML report of a run, and the comparison of two runs.

    run_dir.py          read a run folder (results.json, timeline.json, faults.jsonl, .hlog)
    views.py            policy order, old/new pair, what each policy models, TTR samples
    summary.py          the key metrics per policy (summary table and compare)
    stats.py            nearest-rank median, censored CDF, seeded event bootstrap
    latency.py          latency percentile distributions (results, .hlog or summary points)
    style.py            the policy palette, dashes, the plotly layout
    figures_*.py        timeline, per-fault dot plot and TTR CDF, latency, errors
    html.py tables*.py  HTML building blocks and tables
    page.py             the page: sections, plotly.js once, embedded raw data
    command.py          ``pegbench report RUN_DIR [--out FILE]``
    compare.py          ``pegbench compare BASE CANDIDATE [--max-regression 10%] [--html FILE]``
"""

from .command import main, write_report
from .page import analyse, render
from .run_dir import RunData, RunInputError, load_run

__all__ = ["RunData", "RunInputError", "analyse", "load_run", "main", "render", "write_report"]
