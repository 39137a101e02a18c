"""A micro-batch with several events of a stream runs them as one sequence step on the CPU
(``Runner.sequence``): the features' pre-forecast part over every row in one call, the model once per
wave, the scoring in one call. It must give exactly what one wave per event gives: the same outputs,
alerts and slab (hidden state and aux), bit for bit, for the plain and calibrated scorers (raw values)
and the ticks rules; the masked features keep their waves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig
from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from models.types import Batch

_DIR = DEFAULT_CHECKPOINT.parent


def _pair(make: Any) -> tuple[Runner, Runner, list[int]]:
    """Two runners alike but for the sequence step; the list counts the sequence steps taken."""
    seq, waves = make(), make()
    waves.sequence = False
    taken: list[int] = []
    inner = seq._sequence

    def spy(idx: Any, x: Any, dt: Any, spans: Any) -> Any:
        taken.append(len(spans))
        return inner(idx, x, dt, spans)

    seq._sequence = spy  # type: ignore[method-assign]
    return seq, waves, taken


def _raw_batches(f: int, seed: int, streams: int = 30) -> list[Batch]:
    """~4 events per stream per batch, bursts (alerts open and resolve), NaN rows and late events."""
    rng = np.random.default_rng(seed)
    out, t = [], 1_700_000_000.0
    for k in range(50):
        n = int(rng.integers(1, 150))
        ids = [f"s{int(i)}" for i in rng.integers(0, streams, n)]
        ts = np.sort(t + k * 300.0 + rng.uniform(0, 300.0, n))
        x = rng.standard_normal((n, f)).astype(np.float32)
        x[rng.random(n) < 0.03] *= 40.0
        x[rng.random(n) < 0.02, 0] = np.nan  # rejected: non-finite
        ts[rng.random(n) < 0.02] -= 10_000.0  # rejected: out of order
        out.append(Batch(ids, ts, x))
    return out


def _tick_batches(seed: int, symbols: int = 8) -> list[Batch]:
    """Trades and quotes of a few symbols, several ticks of a symbol per batch, jumps and crashes."""
    rng = np.random.default_rng(seed)
    out, t, price = [], 1_700_000_000.0, np.full(symbols, 100.0)
    for k in range(80):
        n = int(rng.integers(1, 60))
        sym = rng.integers(0, symbols, n)
        price[sym] *= np.exp(rng.normal(0, 0.002, n) + (rng.random(n) < 0.03) * rng.choice([-0.05, 0.05], n))
        p = price[sym].astype(np.float32)
        size = rng.integers(1, 500, n).astype(np.float32)
        quoted = rng.random(n) < 0.7
        bid = np.where(quoted, p * 0.999, np.nan).astype(np.float32)
        ask = np.where(quoted, p * 1.001, np.nan).astype(np.float32)
        ts = np.sort(t + k * 5.0 + rng.uniform(0, 5.0, n))
        ts[rng.random(n) < 0.02] -= 1_000.0  # out of order
        out.append(Batch([f"S{int(i)}" for i in sym], ts, np.stack([p, size, bid, ask], 1)))
    return out


def _same(seq: Runner, waves: Runner, batches: list[Batch]) -> int:
    """Every result and the whole slab bit for bit; returns the alerts opened."""
    opened = 0
    for b in batches:
        r1, r2 = seq.process(b), waves.process(b)
        assert r1.accepted.tolist() == r2.accepted.tolist() and r1.reason == r2.reason
        for a, c in ((r1.prediction, r2.prediction), (r1.expected, r2.expected), (r1.score, r2.score)):
            np.testing.assert_array_equal(a, c)
        assert r1.anomaly.tolist() == r2.anomaly.tolist() and r1.transition.tolist() == r2.transition.tolist()
        assert r1.alerts == r2.alerts  # (dataclasses: every field, a ticks alert's kind and evidence included)
        if r1.forecast is not None or r2.forecast is not None:
            np.testing.assert_array_equal(r1.forecast, r2.forecast)
        opened += sum(a.state == "open" for a in r1.alerts)
    n = len(seq.slab)
    assert n == len(waves.slab)
    np.testing.assert_array_equal(seq.slab.aux[:n].numpy(), waves.slab.aux[:n].numpy())  # (NaN == NaN here)
    np.testing.assert_array_equal(seq.slab.hidden[:n].numpy(), waves.slab.hidden[:n].numpy())
    return opened


def test_plain_scorer_sequence_equals_waves() -> None:
    def make() -> Runner:
        import torch

        torch.manual_seed(0)
        net = RecurrentForecaster(NetConfig(input_size=3, hidden_size=8))
        return Runner(net, ScoringConfig(warmup=5, close_after=2, err_scales=(4,)), device="cpu", capacity=2)

    seq, waves, taken = _pair(make)
    assert seq.features.sequence
    assert _same(seq, waves, _raw_batches(3, 1)) > 0  # alerts opened (and the slab grew from 2 slots)
    assert len(taken) >= 40 and max(taken) >= 5  # most batches ran as sequence steps, some of 5+ waves


def test_bundled_speech_detector_sequence_equals_waves() -> None:
    ck = load_checkpoint(str(_DIR / "speech_gru.pt"))
    seq, waves, taken = _pair(lambda: Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id="speech"))
    _same(seq, waves, _raw_batches(seq.n_features, 2))
    assert len(taken) >= 40


def test_bundled_ticks_sequence_equals_waves() -> None:
    """The rules run every tick of the batch first; the outputs take each tick's spread and size from
    its own evidence, not from the symbol's state, which the later ticks have moved on."""
    ck = load_checkpoint(str(_DIR / "ticks_gru.pt"))
    seq, waves, taken = _pair(lambda: Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id="ticks"))
    assert seq.features.sequence
    assert _same(seq, waves, _tick_batches(3)) > 0  # rule alerts opened
    assert len(taken) >= 60 and max(taken) >= 8


def test_bundled_sensor_detector_sequence_equals_waves() -> None:
    """The calibrated scorer: the residual, its season bucket, its averaging and its channel's calibration
    wait for the forecast; the profile and shift channels, the time-of-day bucket counts and the
    normaliser run ahead, and each row keeps what its own event saw."""
    ck = load_checkpoint(str(_DIR / "sensor_gru.pt"))
    seq, waves, taken = _pair(lambda: Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id="sensor"))
    assert seq.features.sequence and seq.scorer.n_phases  # event-time buckets travel with the values
    assert _same(seq, waves, _raw_batches(1, 5, streams=8)) > 0  # alerts opened after the warm-up
    assert len(taken) >= 40


def test_masked_features_keep_their_waves() -> None:
    """The masked loop has no sequence form: never a sequence step, the same results."""
    ck = load_checkpoint(str(_DIR / "machine_gru.pt"))
    seq, waves, taken = _pair(lambda: Runner(ck.model, ck.scoring, device="cpu", capacity=4))
    assert not seq.features.sequence
    _same(seq, waves, _raw_batches(seq.n_features, 4)[:10])
    assert taken == []
