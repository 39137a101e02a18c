"""The calibrated scorer's compiled CPU loops (``models._calibrated_kernel``) against its torch code.

The loops follow the torch code operation by operation in float32; ``erfc``/``log`` (and torch's
fused ``lerp``/``addcmul``) may round differently in the last bit, so outputs and state agree to
float32 rounding and every alert decision (anomaly, transition) is the same.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.scoring import Scorer
from models.scoring_config import CALIBRATED_SCORING, ScoringConfig
from models.synthetic import make_families
from models.types import Batch

SHIPPED = load_checkpoint().scoring
CONFIGS = {
    "shipped": SHIPPED,
    "calibrated": replace(CALIBRATED_SCORING, warmup=20),
    "no-tail-no-avg": replace(SHIPPED, tail_z=0.0, residual_avg=1.0, warmup=20),
    "no-season": replace(SHIPPED, season_buckets=0, warmup=20),
    "residual-only": replace(ScoringConfig(calibrated=True), warmup=20),
    "step-scale-residual-only": replace(ScoringConfig(calibrated=True, step_scale=True), warmup=20),
    # CALIBRATED_SCORING has the step scale and the held shift on: each off alone
    "no-step-scale": replace(CALIBRATED_SCORING, step_scale=False, warmup=20),
    "no-hold": replace(CALIBRATED_SCORING, hold_shift=False, warmup=20),
    "no-release": replace(CALIBRATED_SCORING, hold_release=0.0, warmup=20),
    # R 25 < the release's 45 events: since is counted up to 45
    "short-block": replace(CALIBRATED_SCORING, suppress=25, suppress_other=12, warmup=20),
    "no-drop": replace(CALIBRATED_SCORING, drop_step=0.0, warmup=20),
    "no-halfnormal": replace(CALIBRATED_SCORING, profile_halfnormal=False, warmup=20),
}


@pytest.mark.parametrize(
    ("name", "f"),
    [
        ("shipped", 1),
        ("shipped", 3),
        ("calibrated", 1),
        ("no-tail-no-avg", 1),
        ("no-season", 2),
        ("residual-only", 1),
        ("calibrated", 3),
        ("step-scale-residual-only", 2),
        ("no-step-scale", 1),
        ("no-step-scale", 3),
        ("no-hold", 1),
        ("no-release", 1),
        ("short-block", 1),
        ("no-drop", 1),
        ("no-halfnormal", 1),
    ],
)
def test_the_compiled_scorer_agrees_with_the_torch_code(name: str, f: int) -> None:
    cfg = CONFIGS[name]
    sc = Scorer(cfg, f)
    assert sc._cal_kernel is not None  # every config here is one the loops cover
    b, n = 7, 700
    rng = np.random.default_rng(5)
    aux_t = sc.init_row().expand(b, -1).clone()  # [b, A]
    aux_k = aux_t.clone()
    ts = 1.7e9 + np.arange(n)[:, None] * 900.0 + rng.uniform(0, 600, (1, b))  # [n, b] 15-minute steps
    level = rng.normal(0, 3, (1, b, f))  # [1, b, f]
    x_all = level + np.sin(np.arange(n)[:, None, None] / 30.0) + rng.standard_t(3, (n, b, f)) * 0.3  # [n, b, f]
    x_all[400:460, 0] += 8.0  # a level shift on stream 0
    x_all[600, 1] -= 25.0  # a spike on stream 1
    x_all[640:, 2] *= 4.0  # more noise on stream 2
    x_all[150::70, 3] += 12.0  # regular spikes on stream 3: short alerts, whose held shift events are released
    x_all[:, 4:] = np.abs(x_all[:, 4:]) + 2.0  # streams 4-6 never below 0 (the drop channel's) ...
    x_all[676:, 4] *= 0.05  # ... an outage on stream 4 (a week in: the hour-of-week means are seen)
    x_all[300, 5, 0] = -1.0  # ... stream 5 once below 0: no drop channel from there on
    opened, released, dropped = 0, 0, 0.0
    cal = sc.calibrated
    assert cal is not None
    n_pend = cal._pend + 2  # the held events' count (hold_release)
    for t in range(n):
        before = aux_t[:, [n_pend, sc.SINCE]].clone() if cal._pend >= 0 else None  # [b, 2]
        x = torch.from_numpy(x_all[t].astype(np.float32))  # [b, f]
        phase = torch.from_numpy(sc.phases(ts[t])) if sc.n_phases else None  # [b, P]
        fc = torch.from_numpy(np.tanh(x_all[t, :, : sc.n_targets] * 0.1).astype(np.float32))  # [b, T]
        kern = sc._cal_kernel
        sc._cal_kernel = None  # the torch code
        xn_t, e_t = sc.pre(aux_t, x, phase)
        out_t = sc.post(aux_t, e_t, fc)
        sc._cal_kernel = kern
        xn_k, e_k = sc.pre(aux_k, x, phase)
        out_k = sc.post(aux_k, e_k, fc)
        torch.testing.assert_close(xn_k, xn_t, rtol=2e-5, atol=2e-6)
        torch.testing.assert_close(e_k, e_t, rtol=2e-5, atol=2e-6)
        torch.testing.assert_close(out_k, out_t, rtol=2e-5, atol=2e-5, equal_nan=True)
        assert torch.equal(out_k[:, sc.ANOMALY], out_t[:, sc.ANOMALY]), t
        assert torch.equal(out_k[:, sc.TRANSITION], out_t[:, sc.TRANSITION]), t
        torch.testing.assert_close(aux_k, aux_t, rtol=2e-5, atol=2e-5)
        opened += int((out_t[:, sc.TRANSITION] > 0).sum())
        if before is not None:  # an alert resolved soon after opening: its held events were folded in
            short = (before[:, 0] > 0) & (aux_t[:, n_pend] == 0) & (before[:, 1] < cfg.hold_release * cfg.shift_short)
            released += int(short.sum())
        if cfg.drop_channel:
            dropped = max(dropped, float(aux_t[4, cal._score.start + 2]))
            assert t < 300 or float(aux_t[5, cal._drop.stop - 1]) == 0.0
    assert opened >= 2  # alerts opened (and the lifecycle ran) on both paths
    if cfg.drop_channel:
        assert dropped >= cfg.open_threshold  # the drop channel saw stream 4's outage
    if cal._pend >= 0:
        assert released >= 2  # the release ran (on both paths: the aux agrees)


@pytest.mark.parametrize("value", [0.0, -1e-3 * 0.25, 7.0])
def test_the_drop_channel_on_constant_streams_is_finite_and_quiet(value: float) -> None:
    """A constant stream: 0 (a count that never counts), -c (once below 0 the channel is off, and its short
    mean plus c is exactly 0: the loops must not divide by it) and a positive level. Both paths give
    finite outputs, the same state and no alert."""
    cfg = replace(CALIBRATED_SCORING, warmup=20)
    assert cfg.drop_channel and cfg.min_std * cfg.drop_step == 1e-3 * 0.25  # -c of a constant stream
    sc = Scorer(cfg, 1)
    aux_t = sc.init_row().unsqueeze(0).clone()  # [1, A]
    aux_k = aux_t.clone()
    ts = 1.7e9 + np.arange(2500) * 300.0  # past a week: the hour-of-week buckets come round
    x = torch.full((1, 1), value)
    for t in range(len(ts)):
        phase = torch.from_numpy(sc.phases(ts[t : t + 1]))
        kern = sc._cal_kernel
        sc._cal_kernel = None
        out_t = sc.post(aux_t, sc.pre(aux_t, x, phase)[1], torch.zeros(1, 1))
        sc._cal_kernel = kern
        out_k = sc.post(aux_k, sc.pre(aux_k, x, phase)[1], torch.zeros(1, 1))
        assert torch.isfinite(out_k).all() and torch.isfinite(out_t).all(), t
        assert float(out_k[0, sc.TRANSITION]) == 0.0 == float(out_t[0, sc.TRANSITION]), t
    torch.testing.assert_close(aux_k, aux_t, rtol=2e-5, atol=2e-5)


def test_a_wave_of_no_rows_and_the_switch() -> None:
    sc = Scorer(SHIPPED, 1)
    aux = sc.init_row().unsqueeze(0)[:0]  # [0, A]
    x_n, err = sc.pre(aux, torch.zeros((0, 1)), torch.zeros((0, 2)))
    assert x_n.shape == (0, 1) and err.shape == (0,)
    assert sc.post(aux, err, torch.zeros((0, 1))).shape == (0, sc.out_size)
    assert Scorer(ScoringConfig(), 1)._cal_kernel is None  # the plain scorer is not the calibrated loops'


@pytest.mark.parametrize("family", ["shifts", "hourly"])
def test_the_bundled_detector_alerts_alike_with_and_without_the_loops(family: str) -> None:
    """The shipped sensor detector (GRU + calibrated scoring) over generated series with injected
    anomalies, every series in one batch per time step: the same alerts, scores within 1e-4."""
    torch.set_num_threads(1)
    ck = load_checkpoint()
    series = make_families(seed=1, per_family=3)[family]
    n = min(len(s.values) for s in series)
    ids = [s.name for s in series]
    runners = [Runner(ck.model, ck.scoring, device="cpu") for _ in range(2)]
    runners[1].scorer._cal_kernel = None  # the torch code
    assert runners[0].scorer._cal_kernel is not None
    opened = 0
    for t in range(n):
        batch = Batch(ids, np.array([s.ts[t] for s in series]), np.array([[s.values[t]] for s in series]))
        a, c = (r.process(batch) for r in runners)
        assert np.array_equal(a.transition, c.transition) and np.array_equal(a.anomaly, c.anomaly), t
        np.testing.assert_allclose(a.score, c.score, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a.prediction, c.prediction, rtol=1e-4, atol=1e-4)
        opened += int((a.transition > 0).sum())
    assert opened >= 3


def test_without_numba_every_scorer_keeps_the_torch_code() -> None:
    """A host whose Python lacks numba (a lent GPU machine's own stack) still runs every bundled model."""
    code = """
import sys
sys.modules["numba"] = None  # import numba raises ImportError
import numpy as np
from models import _jit, ticks
from models.runner import Runner
from models.types import Batch
assert not _jit.AVAILABLE and not ticks._KERNEL
for name, x in (("sensor", [1.0]), ("speech", [0.0] * 8), ("ticks", [10.0, 1.0, 9.9, 10.1])):
    r = Runner.from_checkpoint(f"models/checkpoints/{name}_gru.pt", device="cpu")
    assert not r.scorer.kernel and r.scorer._cal_kernel is None
    res = r.process(Batch(["a"], np.array([1.7e9]), np.array([x[: r.n_features] + [0.0] * (r.n_features - len(x))])))
    assert res.accepted.all()
print("ok")
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
