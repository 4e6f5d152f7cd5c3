"""Section 1's HTML: the verdict, the summary table with old/new ratios, the SLO checks, and
the bootstrap table of section 4. Plain data in, HTML strings out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ..metrics.results import PolicyResult, Results
from ..metrics.slo import slo_unknown_reason, slo_verdict
from .html import DASH, badge, esc, no_data, note, number, percent, table, times, ttr_ms
from .stats import BootstrapCI
from .summary import (LAG_P99, PUT_P50_FAULT, PUT_P99_FAULT, RECOVERED, SUMMARY_METRICS, TTR_P50, Metric,
                      lost_writes, metric_value, ratio, recovered_counts)


def format_metric(metric: Metric, value: float | None) -> str:
    """A metric value as the tables show it."""
    if metric.key.startswith(("ttr_", "client_lag")):
        return ttr_ms(value)
    if metric.unit == "%":
        return percent(value)
    if metric.key in ("missed", "dropped") and value is not None:
        return number(int(value))
    return number(value, 4 if metric.unit == "ms" else 3)


def metric_label(metric: Metric) -> str:
    """The metric's name with its unit, as row headers show it."""
    if metric.unit in ("ms",):
        return f"{metric.label} ({metric.unit})"
    return metric.label


def _recovered_cell(block: PolicyResult) -> str:
    counts = recovered_counts(block)
    if counts is None:
        return DASH
    done, n = counts
    return f"{done} / {n} ({number(100.0 * done / n, 3)} %)"


def _lost_cell(counts: Mapping[str, int] | None) -> str:
    if not counts:
        return DASH
    return f"{counts.get('lost', 0)} of {counts.get('acked', 0)}"


def summary_table(results: Results, order: Sequence[str],
                  pair: tuple[str, str] | None, models: Mapping[str, str]) -> str:
    """Rows = metrics, columns = policies, plus old/new (see views.old_new)."""
    blocks = {p: results.policies[p] for p in order}
    header = ["metric", *order] + ([f"{pair[0]} / {pair[1]}"] if pair else [])
    rows = [["what it models", *[esc(models.get(p) or DASH) for p in order]]
            + ([""] if pair else [])]
    for metric in SUMMARY_METRICS:
        label = metric_label(metric)
        values = {p: metric_value(blocks[p], metric) for p in order}
        if metric is RECOVERED:
            cells = [esc(_recovered_cell(blocks[p])) for p in order]
        else:
            cells = [esc(format_metric(metric, values[p])) for p in order]
        row = [esc(label), *cells]
        if pair:
            row.append(esc(times(ratio(values[pair[0]], values[pair[1]]))))
        rows.append(row)
    lost = lost_writes(results)
    acked = "?" if results.durability is None else results.durability.acked
    lost_text = DASH if lost is None else f"{lost} of {acked} acknowledged writes (run-wide)"
    span = len(order) + (1 if pair else 0)
    by_policy = (results.durability.by_policy if results.durability is not None else None) or {}
    if by_policy:   # whose writes were lost: a real client's acknowledgements are checked too
        rows.append(["lost writes", *[esc(_lost_cell(by_policy.get(p))) for p in order]]
                    + ([""] if pair else []))
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>\n" for row in rows)
    body += f'<tr><td>lost writes (all)</td><td colspan="{span}">{esc(lost_text)}</td></tr>\n'
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    return (f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>\n{body}'
            f"</tbody></table>")


def _versus(label: str, new: float | None, old: float | None) -> str:
    """ "client lag p99 12 ms vs 40,512 ms" ("not recovered" for +inf, a dash for None)."""
    def ms(value: float | None) -> str:
        return ttr_ms(value) if value is None or math.isinf(value) else f"{ttr_ms(value)} ms"

    return f"{label} {ms(new)} vs {ms(old)}"


def headline(results: Results, pair: tuple[str, str] | None) -> str:
    """One sentence comparing new with old: first what the client adds (client lag p99, the
    put response time p99 during faults), then TTR-first p50 and recovery. With Pegasus's own
    failure-detector timings the server's failover dominates every policy's TTR; the client's
    share is what differs."""
    if pair is None:
        return ""
    old, new = pair
    blocks = results.policies
    v_old, v_new = metric_value(blocks[old], TTR_P50), metric_value(blocks[new], TTR_P50)
    if v_old is None and v_new is None:
        return note(f"{new} vs {old}: no fault, so no time to recover to compare.")
    parts = [_versus("client lag p99", metric_value(blocks[new], LAG_P99),
                     metric_value(blocks[old], LAG_P99)) + " (what the client adds to the "
             "server's failover)"]
    during = {p: (metric_value(blocks[p], PUT_P50_FAULT), metric_value(blocks[p], PUT_P99_FAULT))
              for p in (new, old)}
    if any(v is not None for pair_values in during.values() for v in pair_values):
        def p50_p99(values: tuple[float | None, float | None]) -> str:
            return f"{ttr_ms(values[0])} / {ttr_ms(values[1])} ms"

        parts.append(f"put response p50 / p99 during faults {p50_p99(during[new])} vs "
                     f"{p50_p99(during[old])}")
    r = ratio(v_old, v_new)
    faster = ""
    if r is not None and not math.isinf(r) and r > 0:
        faster = f" ({number(r, 3)}× {'faster' if r >= 1 else 'slower'})"
    elif r is not None and math.isinf(r):
        faster = f" ({old} did not recover at the median)"
    parts.append(_versus("TTR-first p50", v_new, v_old) + faster)
    rec_old, rec_new = recovered_counts(blocks[old]), recovered_counts(blocks[new])
    if rec_old and rec_new:
        parts.append(f"recovered {rec_new[0]}/{rec_new[1]} vs {rec_old[0]}/{rec_old[1]} "
                     "(fault, partition) samples")
    return f'<p class="headline">{esc(new)} vs {esc(old)}: {esc("; ".join(parts))}.</p>'


def verdict_block(results: Results, pair: tuple[str, str] | None) -> str:
    """The verdict badge (:func:`slo_verdict`, as the exit code and junit.xml), counts of
    checks by verdict, why the verdict is unknown, and the headline."""
    checks = results.slo.checks if results.slo is not None else ()
    counts = {v: sum(1 for c in checks if c.passed is v) for v in (True, False)}
    unknown = len(checks) - counts[True] - counts[False]
    text = (f"{len(checks)} SLO checks: {counts[True]} passed, {counts[False]} failed, "
            f"{unknown} unknown" if checks else "no SLO checks in this run")
    reason = slo_unknown_reason(results)
    why = f'<p class="unknown-reason">Unknown: {esc(reason)}</p>' if reason else ""
    return (f'<div class="verdict">Verdict {badge(slo_verdict(results))} '
            f"<span>{esc(text)}</span></div>{why}{headline(results, pair)}")


def slo_table(results: Results) -> str:
    """One row per SLO check: metric, value, threshold, verdict, details."""
    checks = results.slo.checks if results.slo is not None else ()
    if not checks:
        return no_data("No SLO checks: the profile's [slo] table was empty.")
    rows = []
    for c in checks:
        bounds = ", ".join(f"{k} {number(v)}" for k, v in (c.threshold or {}).items()) or DASH
        value = c.value
        rows.append([esc(c.name), esc(number(value) if not isinstance(value, str) else value),
                     esc(bounds), badge(c.passed), esc(c.details or "")])
    return table(("check", "value", "threshold", "verdict", "details"), rows, cls="slo", raw=True)


def _signed_ms(value: float | None) -> str:
    if value is None:
        return "undefined (neither recovered)"
    if math.isinf(value):
        return "+∞ (new not recovered)" if value > 0 else "−∞ (old not recovered)"
    return f"{'+' if value > 0 else ''}{number(value, 4)} ms"


def bootstrap_table(cis: Sequence[BootstrapCI], skipped: Sequence[str]) -> str:
    """Difference of TTR medians (new − old) with their bootstrap intervals."""
    parts = []
    if cis:
        rows = []
        for ci in cis:
            interval = (f"[{_signed_ms(ci.low)}, {_signed_ms(ci.high)}]"
                        if ci.low is not None and ci.high is not None else ci.reason)
            rows.append([f"{ci.new} − {ci.old}", _signed_ms(ci.observed), interval,
                         ci.events, f"{ci.n_old} / {ci.n_new}", ci.resamples, ci.seed])
        ci_header = f"{round(cis[0].confidence * 100)} % bootstrap CI"
        parts.append(table(("TTR-first median", "difference", ci_header, "fault events",
                            "samples old / new", "resamples", "seed"), rows, cls="bootstrap"))
        parts.append(note("Negative = the second policy recovers sooner. Resampled unit: the "
                          "fault event (with all its partitions), the same events for both "
                          "policies; not-recovered samples count as +∞; percentile interval, "
                          f"given from {cis[0].min_events} fault events on "
                          "(report.min_fault_events)."))
    for text in skipped:
        parts.append(no_data(text))
    if not parts:
        parts.append(no_data("No pair of policies with TTR samples of the same fault events: "
                             "no difference to show."))
    return "".join(parts)
