"""TTR as HDR histograms: censored and negative samples counted apart, merging runs equals the
histogram of all their samples, ``ttr_hdr`` in results.json, ``ttr.hlog``, and ``pegbench
compare`` printing each side's merged figures."""

from __future__ import annotations

import json
import random
import re

import pytest
from hdrh.log import HistogramLogReader
from support.runs import T_END, T_START, default_delay, make_run

from loadgen.metrics import hdr
from loadgen.metrics.results import PolicyResult, Results, TTRHdrs
from loadgen.metrics.ttr import PartitionTTR
from loadgen.metrics.ttr_hist import (FIRST, HIGHEST_MS, LAG, METRICS, TTR_LOG, TTRHistograms,
                                      from_block, merge, new_histogram, summarize, tag, to_block,
                                      to_ms, ttr_histograms, write_ttr_log)
from loadgen.report.compare import main

pytestmark = pytest.mark.unit


def _ttr(first_s: float, *, recovered: bool = True, stable_s: float | None = None,
         stable_recovered: bool | None = None, failover_s: float | None = 0.0,
         policy: str = "failover", partition: int = 1) -> PartitionTTR:
    stable_s = first_s if stable_s is None else stable_s
    lag = None if failover_s is None else first_s - failover_s
    return PartitionTTR(event_id="1", policy=policy, partition=partition, t_inject=100.0,
                        t_horizon=200.0, first_s=first_s, recovered=recovered,
                        stable_s=stable_s,
                        stable_recovered=recovered if stable_recovered is None else stable_recovered,
                        server_failover_s=failover_s, lag_s=lag,
                        lag_negative=lag is not None and lag < 0)


def _counts(hist) -> list[int]:
    return list(hist.counts[:hist.counts_len])


# ---------------------------------------------------------------- one run


def test_recovered_samples_give_exact_percentiles_and_censored_ones_stay_out():
    ttrs = [_ttr(k / 10) for k in range(1, 11)]               # 100 … 1000 ms
    ttrs += [_ttr(95.0, recovered=False)] * 3                 # observed 95 s, not recovered
    ttrs += [_ttr(7.0, policy="java")]                        # another policy: not counted
    h = ttr_histograms(ttrs, "failover")
    s = summarize(h.first)
    assert (s.count, s.censored, s.p50, s.p99, s.max) == (10, 3, 500, 1000, 1000)
    # the censored samples' 95 s went nowhere: no bucket above 1 s holds anything
    assert h.first.hist.get_count_at_value(95_000) == 0
    assert h.first.hist.get_total_count() == 10
    assert summarize(h.stable).censored == 3
    assert summarize(h.lag) == summarize(h.first)               # failover time 0: lag = first


def test_lag_negative_unknown_and_stable_censoring_are_counted_apart():
    ttrs = [_ttr(0.5, failover_s=0.8),                        # lag −300 ms: negative
            _ttr(1.2, failover_s=0.8),                        # lag 400 ms
            _ttr(1.3, failover_s=None),                       # no server failover: no lag
            _ttr(9.0, failover_s=0.8, recovered=False),       # censored lag
            _ttr(2.0, stable_s=9.0, stable_recovered=False)]  # first recovered, stable not
    h = ttr_histograms(ttrs, "failover")
    lag = summarize(h.lag)
    assert (lag.count, lag.negative, lag.censored, lag.p50, lag.max) == (2, 1, 1, 400, 2000)
    assert h.lag.hist.get_count_at_value(1) == 0             # the negative one is not clamped in
    assert (summarize(h.first).count, summarize(h.first).censored) == (4, 1)
    assert (summarize(h.stable).count, summarize(h.stable).censored) == (3, 2)


def test_values_are_clamped_into_one_ms_to_one_hour():
    h = ttr_histograms([_ttr(0.0002), _ttr(5000.0)], "failover")
    assert h.first.hist.get_count_at_value(1) == 1            # 0.2 ms recorded as 1 ms
    assert h.first.hist.get_max_value() == h.first.hist.get_highest_equivalent_value(HIGHEST_MS)
    assert h.first.count == 2                                 # nothing dropped


# ---------------------------------------------------------------- merging


def _random_run(rng: random.Random, n: int) -> list[PartitionTTR]:
    out = []
    for k in range(n):
        first = rng.lognormvariate(0, 1.2)                    # ~1 s, long tail
        out.append(_ttr(first, recovered=rng.random() > 0.1, failover_s=rng.uniform(0, 2),
                        stable_s=first + rng.uniform(0, 5), partition=k % 8))
    return out


def test_merging_two_runs_equals_the_histogram_of_their_union():
    rng = random.Random(18)
    a, b = _random_run(rng, 480), _random_run(rng, 137)      # a soak's 60×8, a short run
    ha, hb = ttr_histograms(a, "failover"), ttr_histograms(b, "failover")
    before = [_counts(m.hist) for _, m in ha.items()]
    merged, union = merge([ha, hb]), ttr_histograms(a + b, "failover")
    for (key, m), (_, u) in zip(merged.items(), union.items()):
        assert _counts(m.hist) == _counts(u.hist), key          # bucket by bucket
        assert summarize(m) == summarize(u), key                # percentiles, counts, max
        for p in (50.0, 90.0, 99.0, 99.9):
            assert m.hist.get_value_at_percentile(p) == u.hist.get_value_at_percentile(p)
    assert merged.lag.negative > 0 and merged.first.censored > 0   # the test saw both
    assert merged.first.censored == ha.first.censored + hb.first.censored
    assert [_counts(m.hist) for _, m in ha.items()] == before  # inputs left alone


def test_merging_through_results_json_encoding_is_lossless():
    rng = random.Random(7)
    a, b = _random_run(rng, 60), _random_run(rng, 60)
    blocks = [TTRHdrs.from_dict(json.loads(json.dumps(
        to_block(ttr_histograms(r, "failover")).to_dict()))) for r in (a, b)]
    merged, union = merge(from_block(x) for x in blocks), ttr_histograms(a + b, "failover")
    for (key, m), (_, u) in zip(merged.items(), union.items()):
        assert _counts(m.hist) == _counts(u.hist), key
        assert (m.censored, m.negative) == (u.censored, u.negative), key


def test_merging_nothing_is_empty():
    empty = merge([])
    assert isinstance(empty, TTRHistograms)
    assert all(summarize(m).p50 is None and m.count == 0 for _, m in empty.items())


# ---------------------------------------------------------------- results.json and ttr.hlog


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("ttr") / "run")


def _results(directory) -> Results:
    return Results.from_dict(json.loads((directory / "results.json").read_text()))


def test_results_json_carries_ttr_hdr_matching_the_samples(run):
    data = json.loads((run / "results.json").read_text())
    results = Results.from_dict(data)
    assert results.to_dict() == data                            # round trip
    for name, policy in results.policies.items():
        raw = data["policies"][name]["ttr_hdr"]
        assert set(raw) == set(METRICS)
        assert set(raw[LAG]) == {"hdr", "censored", "negative", "count"}
        assert set(raw[FIRST]) == {"hdr", "censored", "count"}
        h = from_block(policy.ttr_hdr)
        # the same samples as faults[].ttr: recovered ones in, censored ones counted
        samples = [s for f in results.faults for s in f.ttr.get(name, {}).values()]
        firsts = sorted(to_ms(s.first_ms / 1000) for s in samples if s.recovered)
        assert h.first.count == policy.ttr_hdr.ttr_first_ms.count == len(firsts)
        assert h.first.censored == policy.ttr_first_ms.censored
        assert h.stable.censored == policy.ttr_stable_ms.censored
        assert h.first.hist.get_max_value() == h.first.hist.get_highest_equivalent_value(
            firsts[-1])
        lags = [s for s in samples if s.recovered and s.lag_ms is not None]
        assert h.lag.count + h.lag.negative == len(lags)
        assert h.lag.censored == policy.client_lag_ms.censored
    legacy = results.policies["legacy"].ttr_hdr
    assert legacy.ttr_first_ms.censored == 2                    # never recovered after fault 3


def test_an_older_results_json_without_ttr_hdr_still_loads(run):
    data = json.loads((run / "results.json").read_text())
    for p in data["policies"].values():
        del p["ttr_hdr"]
    results = Results.from_dict(data)
    assert all(p.ttr_hdr is None for p in results.policies.values())
    assert results.to_dict() == data                            # and is written as it was
    assert PolicyResult.from_dict({}).ttr_hdr is None


def test_ttr_hlog_reads_back_as_results_json(run):
    results = _results(run)
    reader = HistogramLogReader(str(run / TTR_LOG), new_histogram())
    read = {}
    while (hist := reader.get_next_interval_histogram()) is not None:
        read[hist.get_tag()] = hist
    assert set(read) == {tag(p, m) for p in results.policies for m in METRICS}
    assert "failover.ttr_first_ms" in read
    for name, policy in results.policies.items():
        for metric, m in from_block(policy.ttr_hdr).items():
            got = read[tag(name, metric)]
            assert got.get_total_count() == getattr(policy.ttr_hdr, metric).count
            assert _counts(got) == _counts(m.hist)
            for p in (50.0, 99.0, 100.0):
                assert got.get_value_at_percentile(p) == m.hist.get_value_at_percentile(p)
    # one interval: the analysed window, seconds after the log's origin
    hist = read["failover.ttr_first_ms"]
    assert hist.get_start_time_stamp() / 1000 == pytest.approx(1_700_000_000.0)
    assert (hist.get_end_time_stamp() - hist.get_start_time_stamp()) / 1000 == pytest.approx(
        T_END - T_START)


def test_ttr_hlog_without_ttr_hdr_has_no_histograms(run, tmp_path):
    data = json.loads((run / "results.json").read_text())
    for p in data["policies"].values():
        del p["ttr_hdr"]
    path = write_ttr_log(tmp_path, Results.from_dict(data), t0=T_START)
    reader = HistogramLogReader(str(path), new_histogram())
    assert reader.get_next_interval_histogram() is None


# ---------------------------------------------------------------- compare


def _slower(policy, fault, partition):
    delay = default_delay(policy, fault, partition)
    return delay + 1.0 if policy == "failover" and fault.event.kind == "kill" else delay


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    root = tmp_path_factory.mktemp("sides")
    return {"base": [make_run(root / "b1"), make_run(root / "b2")],
            "candidate": [make_run(root / "c1", delay=_slower),
                          make_run(root / "c2", delay=_slower)]}


def _merged_row(out: str, policy: str, side: str) -> str:
    return next(line for line in out.splitlines()
                if re.match(rf"{policy}\s+{side}\s+(p50|none|n/a)", line))


def _expected(dirs, policy: str, metric: str):
    """The union of the runs' samples as one histogram, from faults[].ttr (not ttr_hdr)."""
    hist, censored = new_histogram(), 0
    for d in dirs:
        for f in _results(d).faults:
            for s in f.ttr.get(policy, {}).values():
                value = s.first_ms if metric == FIRST else s.lag_ms
                if value is None:
                    continue
                if not s.recovered:
                    censored += 1
                elif value >= 0:
                    hist.record_value(to_ms(value / 1000))
    return hist, censored


def _put_fault_p99_ms(dirs, policy: str) -> float:
    hist = hdr.new_histogram()
    for d in dirs:
        hist.add(hdr.decode(_results(d).policies[policy]
                            .latency_by_phase_us["put"]["response"]["fault"].hdr))
    return hist.get_value_at_percentile(99.0) / 1000


def _fmt(v: float) -> str:
    return f"{v:,}" if isinstance(v, int) or v >= 1000 else f"{v:.4g}"


def test_compare_prints_each_sides_merged_histograms(sides, capsys):
    base, cand = sides["base"], sides["candidate"]
    code = main([*map(str, base), "--candidate", *map(str, cand)])
    out, _ = capsys.readouterr()
    assert code == 1                                          # the judgement is unchanged
    assert "merged histograms" in out
    for side, dirs in (("base", base), ("candidate", cand)):
        row = _merged_row(out, "failover", side)
        first, first_censored = _expected(dirs, "failover", FIRST)
        lag, lag_censored = _expected(dirs, "failover", LAG)
        assert first.get_total_count() == 14                   # 7 pairs a run, 2 runs
        expected_first = (f"p50 {_fmt(first.get_value_at_percentile(50))} / "
                          f"p99 {_fmt(first.get_value_at_percentile(99))} / "
                          f"max {_fmt(first.get_max_value())} ms (n=14, {first_censored} "
                          f"censored) [2 runs]")
        assert expected_first in row
        expected_lag = (f"p50 {_fmt(lag.get_value_at_percentile(50))} / "
                        f"p99 {_fmt(lag.get_value_at_percentile(99))} / "
                        f"max {_fmt(lag.get_max_value())} ms (n={lag.get_total_count()}, "
                        f"{lag_censored} censored, 0 negative)")
        assert expected_lag in row
        assert f"{_fmt(_put_fault_p99_ms(dirs, 'failover'))} ms [2 runs]" in row
    # the candidate recovers 1 s later after each kill (5 pairs of 7): its merged p50 says so
    b = int(re.search(r"p50 ([\d,]+)", _merged_row(out, "failover", "base")).group(1)
            .replace(",", ""))
    c = int(re.search(r"p50 ([\d,]+)", _merged_row(out, "failover", "candidate")).group(1)
            .replace(",", ""))
    assert 900 < c - b < 1100
    legacy = _merged_row(out, "legacy", "base")
    assert "(n=10, 4 censored) [2 runs]" in legacy            # censored summed, not recorded


def test_compare_skips_runs_without_ttr_hdr_with_a_note(sides, tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    data = json.loads((sides["base"][1] / "results.json").read_text())
    for p in data["policies"].values():
        del p["ttr_hdr"]
    (old / "results.json").write_text(json.dumps(data))
    main([str(sides["base"][0]), str(old), "--candidate", *map(str, sides["candidate"])])
    out, _ = capsys.readouterr()
    assert re.search(r"note: .*old/results\.json: no ttr_hdr .* left out of the merged TTR", out)
    row = _merged_row(out, "failover", "base")
    assert "(n=7, 0 censored) [1 run]" in row                 # only the first base run
    assert row.rstrip().endswith("[2 runs]")                  # put latency: both runs


def test_compare_html_shows_the_merged_histograms(sides, tmp_path, capsys):
    page = tmp_path / "compare.html"
    main([*map(str, sides["base"]), "--candidate", *map(str, sides["candidate"]),
          "--html", str(page)])
    capsys.readouterr()
    html = page.read_text()
    section = html[html.index('id="sec-merged"'):html.index('id="sec-changes"')]
    assert section.count("<tr>") == 1 + 2 * 3                  # header + 3 policies × 2 sides
    assert "(n=14, 0 censored) [2 runs]" in section
