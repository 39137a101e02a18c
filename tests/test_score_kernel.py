"""The compiled CPU loops of the plain Scorer (``models._score_kernel``) against its torch path.

The loops mirror ``Scorer.pre``, ``Scorer.pre_masked`` and ``Scorer.post`` operation by operation in
float32, fused multiply-adds where torch's CPU kernels fuse them. Two library functions differ in the
last bit: torch's float32 ``sqrt`` on the CPU (MKL-backed in the x86 wheels) rounds ~0.7 % of values
one ulp down, and ``erfc``/``log`` are libm's in the loops. So every output and the state agree to
float32 rounding (rtol 2e-5, over hundreds of waves without resynchronising), and the decisions
(anomaly, transition, the masked channel) are exactly the same over runs that open, resolve and
suppress alerts. With torch's ``sqrt`` replaced by a correctly rounded one, the state and the
normalised inputs are bitwise equal (on x86, where torch's kernels fuse ``addcmul`` and ``lerp``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import models._score_kernel as kern
from models.scoring import Scorer
from models.scoring_config import CALIBRATED_SCORING, CONTEXT_SCORING, ScoringConfig
from models.types import Batch

RTOL, ATOL = 2e-5, 1e-6  # float32 rounding, accumulated over hundreds of waves

CONFIGS = {
    "default": (ScoringConfig(), 8, 0, False),
    "ticks-like": (ScoringConfig(warmup=10, close_after=3), 6, 2, False),
    "scales-fold-factor": (
        ScoringConfig(warmup=20, err_scales=(4, 30), fold_clip=3.0, suppress=40, suppress_factor=0.3, close_after=3),
        3,
        0,
        False,
    ),
    "no-suppress": (ScoringConfig(warmup=5, suppress=0, close_after=2), 1, 0, False),
    "masked": (ScoringConfig(warmup=20, suppress=30, close_after=3), 4, 0, True),
    "masked-default": (ScoringConfig(), 8, 0, True),
}


def _pair(name: str) -> tuple[Scorer, Scorer]:
    cfg, f, t, masked = CONFIGS[name]
    on, off = Scorer(cfg, f, n_targets=t, masked=masked), Scorer(cfg, f, n_targets=t, masked=masked)
    off.kernel = False
    assert on.kernel
    return on, off


def _close(a: torch.Tensor, b: torch.Tensor, what: Any, scale: float = 1.0) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape, what
    assert torch.allclose(a, b, rtol=RTOL, atol=ATOL * scale, equal_nan=True), (what, (a - b).abs().max())


def _wave(
    sc: Scorer, aux: torch.Tensor, x: torch.Tensor, fc: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """One wave on rows ``aux[b, A]`` (a gathered copy, as the Runner's): pre, then post."""
    if sc.masked:
        got = sc.pre_masked(aux, x)  # x_norm, obs, err, channel, channel_z
        err = got[2]
    else:
        got = sc.pre(aux, x)  # x_norm, err
        err = got[1]
    return got, sc.post(aux, err, fc)


def _drive(name: str, b: int, steps: int, seed: int, strict: bool = False) -> dict[str, int]:
    """``steps`` waves over ``b`` streams with both paths, each on its own slab; compares everything.

    Each wave takes a random subset of the streams (so their ages differ), some streams restart
    (their rows reset: first events mid-run), a few get bursts far off the forecast (alerts open,
    get suppressed, resolve), one is constant (the min_std floor), one huge (the clip), and masked
    input has missing values, including rows and features with none observed.
    """
    on, off = _pair(name)
    g = torch.Generator().manual_seed(seed)
    f, scale = on.n_features, 50.0
    slab_on = on.init_row().expand(b, -1).clone()  # [b, A]
    if b > 2:
        slab_on[2, on.STEPS] = 1e7 - 3  # the step counter's cap
        slab_on[2, on.COUNT] = 2.0**24
    slab_off = slab_on.clone()
    level = torch.randn(b, f, generator=g) * scale  # [b, F]
    counts = {"opened": 0, "resolved": 0, "anomaly": 0, "suppressed": 0}
    for step in range(steps):
        idx = torch.nonzero(torch.rand(b, generator=g) < 0.7).flatten()  # [n] this wave's streams
        restart = idx[torch.rand(len(idx), generator=g) < 0.003]
        slab_on[restart] = on.init_row()
        slab_off[restart] = on.init_row()
        n = len(idx)
        x = level[idx] + torch.randn(n, f, generator=g) * (1.0 + idx.unsqueeze(1) % 3)  # [n, F]
        burst = torch.rand(n, 1, generator=g) < 0.02
        x = torch.where(burst, x + 40.0 * torch.randn(n, 1, generator=g).sign(), x)  # [n, F]
        x[idx == 0] = 7.0  # a constant stream
        x[idx == 1] *= 1e4  # a stream far beyond the clip on its first events
        if on.masked:
            x = x.masked_fill(torch.rand(n, f, generator=g) < 0.3, float("nan"))
            x[idx == 3] = float("nan")  # a stream never observed
            x[idx == 4, 0] = float("nan")  # a feature never observed
        fc = torch.randn(n, on.n_targets, generator=g) * 0.5  # [n, T]
        a_on, a_off = slab_on[idx], slab_off[idx]  # [n, A] gathered copies
        got_on, out_on = _wave(on, a_on, x, fc)
        got_off, out_off = _wave(off, a_off, x, fc)
        slab_on[idx], slab_off[idx] = a_on, a_off
        for k, (u, v) in enumerate(zip(got_on, got_off, strict=True)):
            if u.dtype == torch.int64:
                assert torch.equal(u, v), (name, step, "channel")
            elif strict:
                assert torch.equal(u, v), (name, step, k)
            else:
                _close(u, v, (name, step, "pre", k))
        s = on.SCORE
        assert torch.equal(out_on[:, s + 1 :], out_off[:, s + 1 :]), (name, step, "anomaly/transition")
        _close(out_on[:, s], out_off[:, s], (name, step, "score"))
        _close(out_on[:, :s], out_off[:, :s], (name, step, "prediction/expected"), scale * 1e4)
        if strict:
            assert torch.equal(slab_on, slab_off), (name, step)
        else:
            _close(slab_on, slab_off, (name, step, "aux"), scale * 1e4)
        trans = out_off[:, on.TRANSITION]
        counts["opened"] += int((trans > 0).sum())
        counts["resolved"] += int((trans < 0).sum())
        counts["anomaly"] += int(out_off[:, on.ANOMALY].sum())
        counts["suppressed"] += int((a_off[:, on.SINCE] < on.config.suppress).sum())
    return counts


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_loops_agree_with_torch_over_alerts(name: str) -> None:
    got = _drive(name, 300, 400, seed=1)
    assert got["opened"] > 0 and got["resolved"] > 0 and got["anomaly"] >= got["opened"], got
    if CONFIGS[name][0].suppress:
        assert got["suppressed"] > 0, got


@pytest.mark.parametrize("b", [1, 8])
@pytest.mark.parametrize("name", ["default", "masked", "scales-fold-factor"])
def test_small_waves_agree(name: str, b: int) -> None:
    _drive(name, b, 300, seed=b)


def test_with_a_correctly_rounded_sqrt_in_torch_the_state_is_bitwise_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every other operation is mirrored exactly: the only last-bit differences left are the score's
    erfc/log (torch's fused multiply-adds are x86 builds' behaviour, so this runs there only)."""
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("torch's CPU kernels fuse addcmul/lerp on x86 builds; elsewhere only the tolerance holds")
    monkeypatch.setattr(torch.Tensor, "sqrt_", lambda self: self.copy_(self.double().sqrt()))
    for name in CONFIGS:
        _drive(name, 64, 200, seed=2, strict=True)


def test_a_wave_of_no_rows_and_odd_layouts() -> None:
    for name in ("default", "masked"):
        on, off = _pair(name)
        f, t = on.n_features, on.n_targets
        empty = torch.zeros((0, on.size))  # [0, A]
        got, out = _wave(on, empty, torch.zeros((0, f)), torch.zeros((0, t)))
        assert out.shape == (0, on.out_size) and got[0].shape == (0, f)
        # non-contiguous input and forecast (views with strides), as numba takes them
        aux_on = on.init_row().expand(5, -1).clone()  # [5, A]
        aux_off = aux_on.clone()
        for step in range(30):
            wide = torch.randn(5, 2 * f) * 3  # [5, 2F]
            fc = torch.randn(5, 2 * t)[:, ::2]  # [5, T] strided
            got_on, out_on = _wave(on, aux_on, wide[:, ::2], fc)
            got_off, out_off = _wave(off, aux_off, wide[:, ::2], fc)
            for u, v in zip(got_on, got_off, strict=True):
                _close(u, v, (name, step))
            _close(out_on, out_off, (name, step), 1e3)
            _close(aux_on, aux_off, (name, step), 1e3)


def test_the_kernel_is_chosen_once_by_config_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (kern._COUNT, kern._STEPS, kern._OPEN, kern._BELOW, kern._SINCE) == (
        Scorer.COUNT,
        Scorer.STEPS,
        Scorer.OPEN,
        Scorer.BELOW,
        Scorer.SINCE,
    )
    assert Scorer(ScoringConfig(), 1).kernel and Scorer(ScoringConfig(), 4, masked=True).kernel
    for cfg in (
        CALIBRATED_SCORING,
        CONTEXT_SCORING,
        ScoringConfig(season_buckets=4),
        ScoringConfig(shift_short=5),
        ScoringConfig(adapter_lr=0.01),
        ScoringConfig(max_window=50),
        ScoringConfig(open_k=2, open_n=3),
        ScoringConfig(profile_buckets=3, suppress_other=10),
    ):
        assert not Scorer(cfg, 1).kernel, cfg
    monkeypatch.setenv("SEQSTREAM_SCORER_KERNEL", "0")
    assert not Scorer(ScoringConfig(), 1).kernel
    # a float64 input keeps the torch path (its arithmetic is float64 there)
    sc = Scorer(ScoringConfig(), 1)
    monkeypatch.delenv("SEQSTREAM_SCORER_KERNEL")
    sc2 = Scorer(ScoringConfig(), 1)
    aux, aux2 = sc.init_row().expand(2, -1).clone(), sc2.init_row().expand(2, -1).clone()
    x = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    assert torch.equal(sc.pre(aux, x)[0], sc2.pre(aux2, x)[0]) and torch.equal(aux, aux2)


def _simulated_run(source: str, kernel: bool, monkeypatch: pytest.MonkeyPatch, streams: int, rounds: int) -> Any:
    from stream.codec import decode_batch
    from stream.pipeline import build_runner
    from stream.settings import Settings
    from stream.sources import SOURCES
    from stream.sources.simulator import Simulator

    monkeypatch.setenv("SEQSTREAM_SCORER_KERNEL", "1" if kernel else "0")
    runner = build_runner(Settings(device="cpu", sources=(source,)), source)
    assert runner.features.scorer.kernel == kernel  # type: ignore[attr-defined]
    src = SOURCES[source]
    sim = Simulator(source, streams, seed=5)
    sim.inject(streams // 2, 200, rounds - 60)
    t0, off = 1_700_000_000.0, 0
    trans, scores, alerts = [], [], []
    for k in range(rounds):
        events = sim.round(t0 + k * 0.5)
        recs = [
            SimpleNamespace(topic="t", partition=0, offset=off + i, key=e.key(), value=e.value(), timestamp=0)
            for i, e in enumerate(events)
        ]
        off += len(recs)
        dec = decode_batch(src.wire, recs, n_features=src.n_features, now=t0 + 1e6)
        res = runner.process(Batch(dec.stream_ids, dec.ts, dec.x))
        trans.append(res.transition.copy())
        scores.append(res.score.copy())
        alerts += [(a.stream_id, a.state, a.kind, a.channel) for a in res.alerts]
    return np.concatenate(trans), np.concatenate(scores), alerts


@pytest.mark.parametrize("source", ["speech", "machines", "ticks"])
def test_a_runner_of_each_bundled_checkpoint_gives_the_same_alerts(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on = _simulated_run(source, True, monkeypatch, streams=24, rounds=500)
    off = _simulated_run(source, False, monkeypatch, streams=24, rounds=500)
    assert np.array_equal(on[0], off[0])  # transitions
    assert on[2] == off[2]  # the alerts: stream, state, kind, channel
    assert np.allclose(on[1], off[1], rtol=RTOL, atol=ATOL)  # scores
    assert (on[0] != 0).any(), "no alert in the run: the comparison saw no decisions"


def test_non_finite_raw_input_propagates_as_in_torch() -> None:
    """The Runner rejects such rows (``Features.valid``), but a direct caller gets torch's NaN pattern."""
    on, off = Scorer(ScoringConfig(warmup=2), 2), Scorer(ScoringConfig(warmup=2), 2)
    off.kernel = False
    aux_on = on.init_row().expand(3, -1).clone()  # [3, A]
    aux_off = aux_on.clone()
    nan, inf = float("nan"), float("inf")
    for rows in ([[1.0, 2.0]] * 3, [[nan, 2.0], [inf, 2.0], [-inf, 1.0]], [[1.0, 2.0]] * 3, [[3.0, 1.0]] * 3):
        x, fc = torch.tensor(rows), torch.zeros(3, 2)  # [3, 2], [3, 2]
        got_on, out_on = _wave(on, aux_on, x, fc)
        got_off, out_off = _wave(off, aux_off, x, fc)
        for u, v in zip((*got_on, out_on, aux_on), (*got_off, out_off, aux_off), strict=True):
            assert torch.equal(torch.isnan(u), torch.isnan(v)), rows
            _close(u, v, rows)
