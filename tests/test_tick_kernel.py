"""The compiled CPU loop of the ticks rules (``models._tick_kernel``) against the torch function.

The loop mirrors :func:`models.ticks._tick_rules` operation by operation in float32; only the
transcendental functions come from another library (libm vs torch's vectorised kernels), so every
output and the state it updates agree to a few float32 ulps, and the decisions (fires, opens,
resolves) are the same, over ticks that open and resolve every alert kind.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import models.ticks as ticks
from models.nets import NetConfig
from models.runner import Runner
from models.scoring_config import ScoringConfig
from models.types import Batch

from .conftest import tick_states, tick_wave


def _features() -> ticks.TickFeatures:
    cfg = NetConfig(input_size=7, output_size=2, hidden_size=8, inputs="ticks", residual=False)
    return ticks.TickFeatures(cfg, ScoringConfig())


def test_the_compiled_rules_agree_with_the_torch_function() -> None:
    f = _features()
    g = torch.Generator().manual_seed(3)
    b = 8
    s_torch, s_kern, price = tick_states(f, b)  # [b, S], [b, S], [b]
    opened = torch.zeros(5)  # [5]
    worst = 0.0
    for step in range(600):
        price, x, dt = tick_wave(step, b, price, g)
        d = dt if step else None
        close = f._close_on(x.device)
        out_t = ticks._tick_rules(s_torch, x, d, close, *f._rule_args)
        assert f._kernel is not None
        feats, quoted, ctx = f._kernel.featurise(s_kern, x, d, o=0)
        out_k = (feats, quoted, *ctx)
        for k, (a, c) in enumerate(zip(out_t, out_k, strict=True)):
            assert a.dtype == c.dtype and a.shape == c.shape, (step, k)
            if a.dtype == torch.bool:
                assert torch.equal(a, c), (step, k)
            else:
                assert torch.allclose(a, c, rtol=2e-5, atol=1e-6, equal_nan=True), (step, k, a, c)
                fin = torch.isfinite(a) & torch.isfinite(c)
                rel = (a - c).abs()[fin] / a.abs()[fin].clamp_min(1e-6)
                worst = max(worst, float(rel.max()) if rel.numel() else 0.0)
        assert torch.equal(out_t[5], out_k[5]), step  # transitions: exactly the same alerts
        assert torch.allclose(s_torch, s_kern, rtol=2e-5, atol=1e-6, equal_nan=True), step
        opened += out_t[5].clamp_min(0).sum(0)  # [5]
    assert (opened > 0).all(), opened  # every rule fired at least once: all paths compared
    assert worst < 2e-5, worst


def test_the_cpu_featuriser_runs_the_kernel() -> None:
    """The worker's CPU path is the compiled loop, and a wave of 0 rows is fine."""
    f = _features()
    assert ticks._KERNEL
    aux = f.init_row().unsqueeze(0).repeat(3, 1)  # [3, A]
    feats, quoted, _ = f.featurise(aux, torch.tensor([[10.0, 1.0, 9.9, 10.1]] * 3), None)
    assert feats.shape == (3, 6) and quoted.tolist() == [True] * 3
    assert aux[0, f._o + ticks._N].item() == 1.0  # the state moved in place
    empty = f.featurise(aux[:0], torch.zeros((0, 4)), torch.zeros(0))
    assert empty[0].shape == (0, 6)
    assert f._kernel is not None and np.isfinite(f._kernel.params).all()


def test_a_ticks_runner_gives_the_same_alerts_with_and_without_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled ticks model end to end (rules, scorer, GRU, packed outputs), two waves per batch."""
    runners = {on: Runner.from_checkpoint("models/checkpoints/ticks_gru.pt", device="cpu") for on in (True, False)}
    g = torch.Generator().manual_seed(11)
    b = 8
    price = torch.full((b,), 100.0)  # [b]
    t = 1.7e9
    alerts: dict[bool, list[tuple[str, str, str | None]]] = {True: [], False: []}
    for step in range(0, 600, 2):
        rows = []
        for k in (step, step + 1):
            price, x, dt = tick_wave(k, b, price, g)
            t += float(dt.mean())
            rows += [(f"sym-{i}", t + 0.01 * i, x[i].tolist()) for i in range(b)]
        batch = Batch.from_rows(rows)
        res = {}
        for on, runner in runners.items():
            monkeypatch.setattr(ticks, "_KERNEL", on)
            res[on] = runner.process(batch)
            alerts[on] += [(a.stream_id, a.state, a.kind) for a in res[on].alerts]
        a, c = res[True], res[False]
        assert np.array_equal(a.accepted, c.accepted) and np.array_equal(a.transition, c.transition), step
        assert np.array_equal(a.anomaly, c.anomaly), step
        np.testing.assert_allclose(a.score, c.score, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a.prediction, c.prediction, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a.expected, c.expected, rtol=1e-4, atol=1e-5)
    assert alerts[True] == alerts[False]
    assert len({k for _, _, k in alerts[True]}) == 5, alerts[True]  # every kind opened: every path compared
