"""Metrics: the recorder, its mergeable state, TTR and error-rate analysis, SLO checks, outputs.

Pure data in, plain data out: nothing here opens a socket or imports Locust or the client.

    recorder.py      Recorder: the client's observer (histograms, counters, timelines)
    series.py        10 ms / 1 s outcome series, per-partition timelines
    state.py         RecorderState: encode / decode / merge across processes
    hdr.py           the HDR configuration and fast counting path
    hlog.py          .hlog interval logs
    events.py        FaultEvent, FaultInstant (one edge of a fault, live), global phases
    ttr.py           TTR-first, TTR-stable, client lag, horizons, censoring
    distribution.py  distributions with censored (+inf) and negative samples
    analysis.py      per-policy figures (error rates, recovery cost, latency, TTR)
    slo.py           SLO checks and verdicts
    results.py       results.json's typed tree (Results) and its codec
    outputs.py       results.json and timeline.json (the recorder's cost: loadgen/bench/recorder.py)
"""

from .events import RECOVERY_S, FaultEvent, FaultInstant, Phase, phases
from .outputs import build_results, build_timeline, write_results, write_timeline
from .recorder import Recorder
from .results import Results, RunFacts
from .series import PartitionTimeline, Series
from .state import PolicyState, RecorderState, decode_state, encode_state, merge_states
from .ttr import PartitionTTR, event_ttrs

__all__ = [
    "Recorder", "RecorderState", "PolicyState", "Series", "PartitionTimeline",
    "encode_state", "decode_state", "merge_states",
    "FaultEvent", "FaultInstant", "Phase", "phases", "RECOVERY_S", "PartitionTTR", "event_ttrs",
    "build_results", "build_timeline", "write_results", "write_timeline", "Results", "RunFacts",
]
