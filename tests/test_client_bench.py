"""The client benchmark runs end to end and prints measured figures (no speed is asserted)."""

from __future__ import annotations

import re

import pytest

from loadgen.bench import client as bench

pytestmark = pytest.mark.timeout(120)


# not ``unit``: the benchmark runs its test cluster in a child process
def test_bench_prints_echo_client_and_their_ratio(capsys):
    assert bench.main(["--seconds", "0.3", "--rounds", "1", "--greenlets", "5"]) == 0
    out = capsys.readouterr().out
    echo = float(re.search(r"echo ceiling : +(\d+) ops/s", out).group(1))
    client = float(re.search(r"client +: +(\d+) ops/s", out).group(1))
    ratio = float(re.search(r"ratio +: +([\d.]+)", out).group(1))
    assert echo > 0 and client > 0
    assert ratio == pytest.approx(client / echo, abs=0.01)


@pytest.mark.unit
def test_echo_phase_refuses_to_count_error_replies():
    # A reply with an error is cheaper than a put: counting it would inflate the ceiling.
    from loadgen.errors import PegasusError
    from loadgen.testing.cluster import TestCluster

    with TestCluster(replicas=1, partitions=8) as cluster:
        cluster.set_mode(cluster.replica_addrs[0], "invalid_state")
        with pytest.raises(PegasusError, match="error reply"):
            bench.echo_ceiling(cluster.replica_addrs[0], 0.2, 4, b"v")
