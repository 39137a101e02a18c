"""Simulator: deterministic per seed, valid per the input contract, anomalies labelled."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from stream.codec import decode_batch
from stream.sources import SOURCES
from stream.sources.simulator import Simulator

N_FEATURES = {"sensors": 1, "speech": 8, "ticks": 2, "machines": 4}


def _run(source: str, seed: int, rounds: int = 30) -> tuple[list[bytes], Simulator]:
    sim = Simulator(source, 12, seed=seed)
    sim.inject(2, 10, 20, length=5)
    out = []
    for k in range(rounds):
        out += [e.value() for e in sim.round(1_700_000_000.0 + k)]
    return out, sim


@pytest.mark.parametrize("source", ["sensors", "speech", "ticks", "machines"])
def test_deterministic_and_valid(source: str) -> None:
    a, sim_a = _run(source, seed=3)
    b, _ = _run(source, seed=3)
    c, _ = _run(source, seed=4)
    assert a == b and a != c
    recs = [SimpleNamespace(topic="t", partition=0, offset=i, key=None, value=v, timestamp=0) for i, v in enumerate(a)]
    d = decode_batch(SOURCES[source].wire, recs, n_features=N_FEATURES[source], now=1_800_000_000.0)
    assert d.errors == [] and len(d.index) == len(a)
    assert len(sim_a.labels) == 2 and all(lab.start_ts is not None for lab in sim_a.labels)
    assert len({lab.stream for lab in sim_a.labels}) == 2


def test_anomalous_events_are_flagged() -> None:
    sim = Simulator("sensors", 5, seed=0)
    (an,) = sim.inject(1, 3, 4, length=2)
    flagged = [(k, e.stream) for k in range(8) for e in sim.round(float(k)) if e.anomalous]
    assert flagged == [(3, an.stream), (4, an.stream)]


def test_ticks_events_of_every_kind_are_labelled_per_tick() -> None:
    from stream.sources.ticks import TICK_KINDS

    sim = Simulator("ticks", 10, seed=1)
    planned = sim.inject(5, 5, 30)
    assert [a.kind for a in planned] == list(TICK_KINDS)  # kinds in turn
    kinds: dict[str, list[str | None]] = {}
    for k in range(200):
        for e in sim.round(1_700_000_000.0 + k):
            kinds.setdefault(e.stream, []).append(e.kind)
            assert e.anomalous == (e.kind is not None)
            if e.kind == "crossed_quote":
                assert e.payload["bid"] > e.payload["ask"]
    for a in planned:  # each event lasts its length in ticks of its symbol
        assert kinds[a.stream].count(a.kind) == a.length
    assert {lab.kind for lab in sim.labels} == set(TICK_KINDS)
    counts = sorted(len(v) for v in kinds.values())
    assert counts[-1] >= 3 * counts[0]  # different activity levels


def test_machines_fault_one_channel_with_missing_values_elsewhere() -> None:
    from stream.sources.machines import MACHINE_CHANNELS

    sim = Simulator("machines", 8, seed=2)
    (a,) = sim.inject(1, 50, 51, length=10)
    assert a.channel in MACHINE_CHANNELS
    nulls = 0
    for k in range(120):
        for e in sim.round(float(k)):
            vals = e.payload["values"]
            assert len(vals) == len(MACHINE_CHANNELS) and any(v is not None for v in vals)
            nulls += vals.count(None)
            if e.anomalous:
                assert e.stream == a.stream and 50 <= k < 60 and vals[MACHINE_CHANNELS.index(a.channel)] is not None
    assert nulls > 0
