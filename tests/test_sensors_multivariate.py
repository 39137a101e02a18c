"""Multivariate sensors: missing values are masked, per-feature normalisation, the alert names the channel."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from models import Batch, NetConfig, RecurrentForecaster, Runner, ScoringConfig
from models.scoring import Scorer
from stream.codec import decode_batch
from stream.sources import SOURCES

CHANNELS = ("temperature", "vibration", "pressure", "current")
CFG = NetConfig(input_size=8, output_size=4, hidden_size=8, inputs="masked", channels=CHANNELS)


def _runner(**kw: object) -> Runner:
    torch.manual_seed(0)
    return Runner(RecurrentForecaster(CFG), ScoringConfig(warmup=50, **kw), device="cpu")  # type: ignore[arg-type]


def test_missing_value_keeps_its_feature_statistics_and_leaves_the_error() -> None:
    sc = Scorer(ScoringConfig(), 3, masked=True)
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    for v in ([1.0, 10.0, 100.0], [2.0, 12.0, 90.0], [3.0, 11.0, 95.0]):
        sc.pre_masked(aux, torch.tensor([v]))
    mean, var = aux[0, sc._mean].clone(), aux[0, sc._var].clone()
    fc = aux[0, sc._fcast].clone()
    rscale = aux[0, sc._rscale].clone()
    x_norm, obs, err, chan, chan_z = sc.pre_masked(aux, torch.tensor([[4.0, math.nan, 500.0]]))
    assert obs.tolist() == [[1.0, 0.0, 1.0]]
    assert aux[0, sc._mean][1] == mean[1] and aux[0, sc._var][1] == var[1]  # untouched
    assert aux[0, sc._mean][0] != mean[0]
    std = var.clamp_min(1e-6).sqrt()
    xn = {c: min(8.0, max(-8.0, float((v - mean[c]) / std[c]))) for c, v in ((0, 4.0), (2, 500.0))}  # clip 8
    z = [abs(xn[c] - float(fc[c])) / float(rscale[c]) for c in (0, 2)]
    assert float(err[0]) == pytest.approx(sum(z) / 2, rel=1e-4)  # mean over the observed features only
    assert int(chan[0]) == 2 and float(chan_z[0]) == pytest.approx(max(z), rel=1e-4)
    # the missing value is imputed with the feature's last observation (11.0), normalised
    assert float(x_norm[0, 1]) == pytest.approx(float((11.0 - mean[1]) / std[1]), rel=1e-4)


def test_rows_with_missing_values_are_accepted_all_missing_or_infinite_are_not() -> None:
    r = _runner()
    nan = math.nan
    res = r.process(
        Batch.from_rows(
            [
                ("m1", 1.0, [1.0, nan, 3.0, 4.0]),
                ("m2", 1.0, [nan, nan, nan, nan]),
                ("m3", 1.0, [1.0, math.inf, 3.0, 4.0]),
            ]
        )
    )
    assert res.accepted.tolist() == [True, False, False]
    assert res.reason[1:] == ["non_finite", "non_finite"]
    assert np.isfinite(res.prediction[0]).all()  # a forecast for every channel, missing ones too


def _machine(n: int, seed: int, fault: tuple[int, int] | None = None, missing: float = 0.05) -> list[list[float]]:
    """Four channels driven by one load; ``fault = (channel, from)`` makes that channel erratic."""
    rng = np.random.default_rng(seed)
    load = 0.6 + 0.25 * np.sin(np.arange(n) / 30.0) + np.cumsum(rng.normal(0, 0.01, n)) * 0.1  # [n]
    gain, off, noise = (
        np.array([30.0, 3.0, 2.0, 20.0]),
        np.array([40.0, 2.0, 5.0, 10.0]),
        np.array([0.3, 0.1, 0.05, 0.4]),
    )
    v = off + gain * load[:, None] + noise * rng.standard_normal((n, 4))  # [n, 4]
    if fault is not None:
        c, t0 = fault
        v[t0:, c] += rng.choice([-1.0, 1.0], n - t0) * rng.uniform(3, 6, n - t0) * 0.25 * gain[c]
    out = v.tolist()
    for t in range(n):
        for c in range(4):
            if rng.random() < missing and not (fault and c == fault[0] and t >= fault[1]):
                out[t][c] = math.nan
    return out


@pytest.mark.parametrize("channel", range(4))
def test_alert_names_the_perturbed_channel(channel: int) -> None:
    r = _runner()
    hit = _machine(400, seed=channel, fault=(channel, 300))
    quiet = _machine(400, seed=10 + channel)
    opened = []
    for t in range(400):
        res = r.process(Batch.from_rows([("hit", float(t), hit[t]), ("quiet", float(t), quiet[t])]))
        opened += [a for a in res.alerts if a.state == "open"]
    assert [a.stream_id for a in opened] == ["hit"], [(a.stream_id, a.explanation) for a in opened]
    a = opened[0]
    assert a.channel == CHANNELS[channel] and a.extra["channel_index"] == channel
    assert (a.explanation or "").startswith(f"open: {CHANNELS[channel]} drove it")
    assert len(a.expected) == len(a.actual) == 4


def test_sensor_values_null_is_missing_in_the_codec() -> None:
    def rec(values: object) -> SimpleNamespace:
        v = (
            (b'{"stream": "m", "ts": 1, "values": %s}' % str(values).replace("None", "null").encode())
            if values
            else b""
        )
        return SimpleNamespace(topic="t", partition=0, offset=0, key=b"m", value=v, timestamp=0)

    d = decode_batch(SOURCES["machines"].wire, [rec([1.5, None, 2, None])], n_features=4, now=10.0)
    assert d.errors == [] and np.isnan(d.x[0, [1, 3]]).all() and d.x[0, 0] == 1.5
    bad = decode_batch(
        SOURCES["machines"].wire, [rec([None, None, None, None]), rec([1, 2, 3])], n_features=4, now=10.0
    )
    assert [e[1] for e in bad.errors] == ["all_missing", "wrong_length"]
    uni = decode_batch(SOURCES["sensors"].wire, [rec([None])], n_features=1, now=10.0)
    assert [e[1] for e in uni.errors] == ["all_missing"]
