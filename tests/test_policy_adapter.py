"""Alert policy k-of-n opening and the per-stream online adapter (ScoringConfig.open_k/open_n, adapter_lr)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import Batch, ConfigError, ScoringConfig
from models.scoring import Scorer

from .conftest import make_runner


def _policy(cfg: ScoringConfig, errs: list[float]) -> tuple[list[bool], list[int]]:
    """Feed residuals straight to post(): the per-event anomaly flags and alert transitions."""
    sc = Scorer(cfg, 1)
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    flags, trans = [], []
    for e in errs:
        out = sc.post(aux, torch.tensor([e]), torch.zeros(1, 1))  # [1, 5]
        flags.append(bool(out[0, sc.ANOMALY] > 0))
        trans.append(int(out[0, sc.TRANSITION]))
    return flags, trans


def test_k_of_n_needs_k_hot_events_among_the_last_n() -> None:
    rng = np.random.default_rng(0)
    calm = (0.1 + 0.02 * rng.standard_normal(400)).tolist()
    base = {"warmup": 0, "suppress": 0, "close_after": 3}
    one_spike = [*calm, 5.0, *calm[:20]]
    two_spikes = [*calm, 5.0, 0.1, 5.0, *calm[:20]]
    # 1 of 1 (the default): one spike opens an alert
    flags, trans = _policy(ScoringConfig(**base), one_spike)
    assert flags[400] and trans[400] == 1
    # 2 of 3: one spike does not, two within three events do, on the second
    flags, trans = _policy(ScoringConfig(**base, open_k=2, open_n=3), one_spike)
    assert not any(flags) and 1 not in trans
    flags, trans = _policy(ScoringConfig(**base, open_k=2, open_n=3), two_spikes)
    assert trans.index(1) == 402 and not any(flags[:402])
    assert -1 in trans[402:]  # and it resolves after the calm returns
    # 2 of 3 but the spikes four events apart: never two hot events in one window of 3
    far = [*calm, 5.0, 0.1, 0.1, 0.1, 5.0, *calm[:20]]
    flags, _ = _policy(ScoringConfig(**base, open_k=2, open_n=3), far)
    assert not any(flags)


def test_k_of_n_ring_keeps_turning_past_the_step_cap() -> None:
    """The ring has its own write position: steps stops counting at 1e7, the ring must not."""
    cfg = ScoringConfig(warmup=0, suppress=0, close_after=3, open_k=2, open_n=3)
    sc = Scorer(cfg, 1)
    aux = sc.init_row().unsqueeze(0).clone()
    rng = np.random.default_rng(0)
    for e in (0.1 + 0.02 * rng.standard_normal(300)).tolist():  # calibrate
        sc.post(aux, torch.tensor([e]), torch.zeros(1, 1))
    aux[0, sc.STEPS] = 1e7 - 2  # a very long-lived stream
    flags = []
    for e in [0.1] * 6 + [5.0, 0.1, 5.0]:
        out = sc.post(aux, torch.tensor([e]), torch.zeros(1, 1))
        flags.append(bool(out[0, sc.ANOMALY] > 0))
    assert flags == [False] * 8 + [True]  # two hot events within three still open an alert
    assert Scorer(cfg, 1).size == Scorer(ScoringConfig(), 1).size + 4  # three flags and the position


def _biased_loop(cfg: ScoringConfig, n: int = 3000) -> np.ndarray:
    """A forecaster that is right up to a fixed scale and offset: 0.6 * truth - 0.4 (normalised)."""
    sc = Scorer(cfg, 1)
    aux = sc.init_row().unsqueeze(0).clone()
    t = np.arange(n + 1)
    x = np.sin(2 * math.pi * t / 40.0) * 3.0 + 10.0
    errs = []
    for i in range(n):
        _, err = sc.pre(aux, torch.tensor([[x[i]]], dtype=torch.float32))
        mean, std = float(aux[0, sc._mean][0]), math.sqrt(max(float(aux[0, sc._var][0]), 1e-6))
        truth = (x[i + 1] - mean) / std  # the next value in the normaliser's units
        sc.post(aux, err, torch.tensor([[0.6 * truth - 0.4]], dtype=torch.float32))
        errs.append(float(err[0]))
    return np.asarray(errs)


def test_adapter_learns_a_streams_forecast_correction() -> None:
    off = _biased_loop(ScoringConfig())
    on = _biased_loop(ScoringConfig(adapter_lr=0.05))
    assert on[-500:].mean() < 0.2 * off[-500:].mean()  # most of the systematic error is gone
    sc = Scorer(ScoringConfig(adapter_lr=0.05), 1)
    assert sc.size == Scorer(ScoringConfig(), 1).size + 3  # a, b, the raw forecast: one float each


@pytest.mark.parametrize(
    "cfg",
    [ScoringConfig(warmup=20, adapter_lr=0.05), ScoringConfig(warmup=20, open_k=2, open_n=4, suppress=0)],
    ids=["adapter", "k_of_n"],
)
def test_new_state_lives_in_the_slab_batches_and_snapshots(cfg: ScoringConfig) -> None:
    rng = np.random.default_rng(2)
    n_streams, steps = 5, 120
    xs = np.sin(np.arange(steps)[:, None] / 7.0 + np.arange(n_streams)) + 0.1 * rng.standard_normal((steps, n_streams))
    xs = xs.astype(np.float32)  # [steps, streams]
    ids = [f"s{k}" for k in range(n_streams)]

    def run(r, cols: list[int], lo: int, hi: int) -> np.ndarray:
        out = []
        for t in range(lo, hi):
            res = r.process(Batch([ids[k] for k in cols], np.full(len(cols), float(t)), xs[t, cols][:, None]))
            out.append(np.concatenate([res.prediction[:, 0], res.score, res.anomaly]))
        return np.asarray(out)  # [hi - lo, 3 * len(cols)]

    every = list(range(n_streams))
    together = run(make_runner(hidden=8, scoring=cfg), every, 0, steps)
    for k in every:  # each stream alone gets what it got in the batch
        alone = run(make_runner(hidden=8, scoring=cfg), [k], 0, steps)
        np.testing.assert_allclose(alone, together[:, [k, n_streams + k, 2 * n_streams + k]], atol=1e-5)
    a = make_runner(hidden=8, scoring=cfg)
    run(a, every, 0, 60)
    b = make_runner(hidden=8, scoring=cfg)
    b.slab.restore(a.slab.snapshot())
    np.testing.assert_array_equal(run(a, every, 60, steps), run(b, every, 60, steps))  # the snapshot carries it


def test_new_settings_are_checked() -> None:
    for bad in ({"open_k": 0}, {"open_k": 3, "open_n": 2}, {"open_n": 65, "open_k": 1}, {"adapter_lr": -0.1}):
        with pytest.raises(ConfigError):
            ScoringConfig(**bad)
    with pytest.raises(ConfigError, match="masked"):
        Scorer(ScoringConfig(adapter_lr=0.1), 2, masked=True)
