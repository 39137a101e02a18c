"""Ticks: per-symbol features (exact values), rule alerts by kind, state in the slab, batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import Batch, NetConfig, RecurrentForecaster, Runner, ScoringConfig
from models.tick_alerts import KINDS
from models.ticks import TickFeatures

CFG = NetConfig(input_size=7, output_size=2, hidden_size=8, inputs="ticks", residual=False)


def _runner() -> Runner:
    torch.manual_seed(0)
    return Runner(RecurrentForecaster(CFG), ScoringConfig(), device="cpu")


def test_features_exact_values_on_a_hand_example() -> None:
    f = TickFeatures(CFG, ScoringConfig())
    aux = f.init_row().unsqueeze(0).clone()  # [1, A]
    ticks = [
        ([100.0, 9.0, 99.9, 100.1], math.inf),  # first tick: no return, the usual (0) inter-arrival
        ([101.0, 99.0, math.nan, math.nan], 2.0),  # no quote: spread 0, quoted 0
        ([100.0, 0.0, 99.95, 100.05], 0.5),
    ]
    rows = []
    for x, dt in ticks:
        feats, quoted, _ = f.featurise(aux, torch.tensor([x], dtype=torch.float32), torch.tensor([dt]))
        rows.append([*feats[0].tolist(), float(quoted[0])])
    r = math.log(101.0 / 100.0)
    expected = [
        # ret, |ret|, spread, log1p(size), log dt, log realised vol, quoted
        [0.0, 0.0, 0.2 / 100.0, math.log(10.0), 0.0, 0.5 * math.log(1e-6), 1.0],
        [r, r, 0.0, math.log(100.0), math.log(2.0), math.log(r), 0.0],  # RV = r^2 after the first return
        [-r, r, 0.1 / 100.0, 0.0, math.log(0.5), math.log(r), 1.0],  # RV = mean of r^2, r^2
    ]
    np.testing.assert_allclose(np.array(rows), np.array(expected), rtol=2e-5, atol=2e-6)


def _market(n: int, seed: int, events: dict[int, str] | None = None) -> list[tuple[float, list[float]]]:
    """One symbol: a random walk (0.1 % per tick), 1 s apart, lognormal sizes, a 0.05 % spread."""
    rng = np.random.default_rng(seed)
    events = events or {}
    p, t, out, frozen, crash = 100.0, 0.0, [], 0, 0
    for i in range(n):
        kind = events.get(i)
        t += 1.0
        size = float(np.round(rng.lognormal(3.0, 0.5)))
        if kind == "jump":
            p *= math.exp(0.02)  # 20 volatilities
        elif kind == "flash_crash":
            crash = 4
        elif kind == "stale_quote":
            frozen = 40
        if crash:
            p *= math.exp(-0.006)
            crash -= 1
        elif frozen:
            frozen -= 1
            out.append((t, out[-1][1]))
            continue
        else:
            p *= math.exp(0.001 * rng.standard_normal())
        bid, ask = p * (1 - 0.00025), p * (1 + 0.00025)
        if kind == "crossed_quote":
            bid, ask = ask + 0.05, ask
        if kind == "volume_burst" or (i - 1 in events and events[i - 1] == "volume_burst"):
            size *= 40.0
        if kind == "volume_burst":
            events.setdefault(i + 1, "volume_burst_tail")
        out.append((t, [p, size, bid, ask]))
    return out


def _alerts(runner: Runner, streams: dict[str, list[tuple[float, list[float]]]]) -> list[tuple[str, int, str, str]]:
    """Run streams interleaved, one tick of each per batch; (stream, tick, kind, state) of each alert."""
    got = []
    n = max(len(v) for v in streams.values())
    for i in range(n):
        rows = [(sid, v[i][0], v[i][1]) for sid, v in streams.items() if i < len(v)]
        res = runner.process(Batch.from_rows(rows))
        assert res.accepted.all()
        for a in res.alerts:
            got.append((a.stream_id, i, a.kind, a.state))
            assert a.explanation and a.kind in KINDS
            assert a.explanation.startswith(a.kind.replace("_", " ") + " " + a.state)
    return got


@pytest.mark.parametrize("kind", KINDS)
def test_each_rule_alerts_its_injected_event_and_nothing_else(kind: str) -> None:
    at = 300
    streams = {"hit": _market(400, 1, {at: kind}), "quiet": _market(400, 2)}
    got = _alerts(_runner(), streams)
    opened = [(s, i, k) for s, i, k, st in got if st == "open"]
    assert [s for s, _, _ in opened] == ["hit"], got
    (_, i, k) = opened[0]
    assert k == kind
    latency = {"jump": 1, "flash_crash": 3, "stale_quote": 9, "crossed_quote": 0, "volume_burst": 2}[kind]
    assert at <= i <= at + latency, (i, at)
    assert any(s == "hit" and k2 == kind and st == "resolved" for s, _, k2, st in got)


def test_alert_explains_expected_versus_actual() -> None:
    r = _runner()
    alerts = []
    for t, x in _market(320, 3, {300: "crossed_quote"}):
        alerts += r.process(Batch.from_rows([("S", t, x)])).alerts
    a = alerts[0]
    assert a.kind == "crossed_quote" and a.state == "open" and a.score >= 0.5
    assert a.expected[0] > a.actual[0]  # expected: the bid, actual: the ask (bid above ask)
    assert "is above ask" in (a.explanation or "")


def test_predictions_are_next_tick_in_input_units_and_forecast_is_return_and_vol() -> None:
    r = _runner()
    res = None
    for t, x in _market(60, 4):
        res = r.process(Batch.from_rows([("S", t, x)]))
    assert res is not None and res.forecast is not None
    assert res.prediction.shape == (1, 4) and res.forecast.shape == (1, 2)
    price = _market(60, 4)[-1][1][0]
    assert abs(res.prediction[0, 0] / price - 1) < 0.05  # next price near the last
    assert res.forecast[0, 1] >= 0  # volatility
    assert res.prediction[0, 2] <= res.prediction[0, 0] <= res.prediction[0, 3]  # bid <= price <= ask


def test_missing_quote_is_accepted_but_bad_price_is_rejected() -> None:
    r = _runner()
    nan = float("nan")
    res = r.process(
        Batch.from_rows(
            [
                ("a", 1.0, [10.0, 5.0, nan, nan]),
                ("b", 1.0, [nan, 5.0, 9.9, 10.1]),
                ("c", 1.0, [10.0, 5.0, float("inf"), 10.1]),
                ("d", 1.0, [-1.0, 5.0, 9.9, 10.1]),
            ]
        )
    )
    assert res.accepted.tolist() == [True, False, False, False]
    assert res.reason[1:] == ["non_finite"] * 3


def test_state_lives_in_the_slab_snapshot_and_batching_does_not_matter() -> None:
    streams = {f"S{k}": _market(200, 10 + k, {150: KINDS[k]}) for k in range(5)}
    rows = [(sid, v[i][0], v[i][1]) for i in range(200) for sid, v in streams.items()]
    a = _runner()
    out_a = [a.process(Batch.from_rows(rows[j : j + 7])) for j in range(0, 500, 7)]
    snap = a.slab.snapshot()
    b = _runner()
    b.slab.restore(snap)
    rest = rows[7 * len(out_a) :]
    ra = [a.process(Batch.from_rows(rest[j : j + 64])) for j in range(0, len(rest), 64)]
    rb = [b.process(Batch.from_rows(rest[j : j + 64])) for j in range(0, len(rest), 64)]
    for x, y in zip(ra, rb):
        np.testing.assert_array_equal(x.prediction, y.prediction)
        assert [(al.kind, al.state, al.index) for al in x.alerts] == [(al.kind, al.state, al.index) for al in y.alerts]
    # one symbol alone, one tick per batch, gives the same as all symbols in batches holding repeats
    alone = _runner()
    big = _runner()
    mixed = [big.process(Batch.from_rows(rows[j : j + 23])) for j in range(0, len(rows), 23)]
    pm = np.concatenate([m.prediction for m in mixed])
    idx = [i for i, r in enumerate(rows) if r[0] == "S2"]
    pa = np.concatenate([alone.process(Batch.from_rows([rows[i]])).prediction for i in idx])
    np.testing.assert_allclose(pm[idx], pa, rtol=1e-5, atol=1e-6)
    kinds_mixed = sorted((al.stream_id, al.kind, al.state) for m in mixed for al in m.alerts)
    assert ("S2", KINDS[2], "open") in kinds_mixed
