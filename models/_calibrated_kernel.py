"""The calibrated scorer's per-wave work (:meth:`models.scoring.Scorer.pre` and ``post`` with
``calibrated=True``) as compiled loops over a wave's rows, for the CPU.

Why: the bundled sensor detector's scorer was ~200 small torch ops per wave, ~0.8 ms per wave at any
batch size up to ~100 on the CPU, all of it dispatch (docs/benchmarks.md, issue 17). numba compiles
these loops with LLVM at startup (no C compiler needed; cached on disk where it can write); a call
costs a few µs plus a few hundred ns per row. The loops take the wave's ``rows`` of a larger aux
tensor: the Runner passes the slab's own on the CPU, so the 861-float rows are never copied out and
back (``Runner.aux_in_place``).

The arithmetic follows the torch code operation by operation in float32 (constants as float32, ``lerp``
and ``addcmul`` as torch's fused forms, :mod:`models._jit`; reductions sum then divide); ``erfc`` and
``log`` are libm's here and torch's there, so scores agree to float32 rounding (``tests/test_calibrated_kernel.py``:
outputs, state, every alert decision). CUDA keeps the torch code. ``lay`` (int64: column offsets and
sizes) and ``par`` (float32: rates and thresholds), built once by :func:`layout`, say what a config has.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._jit import fma, jit, lerp
from .scoring_config import EPS_P

__all__ = [
    "calibrated_post", "calibrated_post_seq", "calibrated_pre", "calibrated_pre_seq", "eligible", "keep_width",
    "layout", "warm_up",
]  # fmt: skip

_F = np.float32
_ZERO, _HALF, _ONE, _TWO = _F(0.0), _F(0.5), _F(1.0), _F(2.0)
_EPS4, _EPS12, _EPS_P = _F(1e-4), _F(1e-12), _F(EPS_P)

# lay: column offsets and sizes
(
    L_F, L_T, L_MEAN, L_VAR, L_FCAST,
    L_SEASON, L_NS, L_PROFILE, L_NP, L_SHIFT,
    L_C, L_GATE, L_CMEAN, L_CVAR, L_BVAR, L_BCOUNT, L_H, L_SCORE, L_CSINCE, L_RAVG, L_EXC, L_STEP,
    L_HOLD, L_PEND, L_DROP, L_HALFN, L_N,
) = range(27)  # fmt: skip
# par: float32 numbers
(
    P_MIN_VAR, P_CLIP, P_INV_NORM_W, P_SEASON_RATE, P_PROFILE_RATE, P_INV_SHIFT_SHORT, P_INV_SHIFT_LONG,
    P_SHIFT_LONG, P_INV_RAVG, P_RAVG_ON, P_LOG_C, P_INV_LOG_EPS, P_INV_SQRT2, P_TAIL_Z, P_INV_Q0, P_N0,
    P_INV_ERR_W, P_OPEN, P_CLOSE, P_CLOSE_AFTER, P_WARMUP, P_SUPPRESS, P_SUPPRESS_OTHER, P_MIN_STD,
    P_RELEASE, P_SINCE_CAP, P_DROP, P_N,
) = range(28)  # fmt: skip


def eligible(sc: Any) -> bool:
    """Whether the compiled loops cover this :class:`~models.scoring.Scorer`'s configuration (the shipped
    calibrated detector's does; the legacy profile gate, the online adapter and masked input keep torch)."""
    c = sc.config
    return sc.calibrated is not None and not sc.masked and not sc.gated and not c.adapter_lr


def layout(sc: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(lay, par)`` of an :func:`eligible` scorer."""
    c, cal = sc.config, sc.calibrated
    assert cal is not None
    lay = np.zeros(L_N, np.int64)  # [L_N]
    lay[L_F], lay[L_T] = sc.n_features, sc.n_targets
    lay[L_MEAN], lay[L_VAR], lay[L_FCAST] = sc._mean.start, sc._var.start, sc._fcast.start
    lay[L_SEASON], lay[L_NS] = sc._season, c.season_buckets
    lay[L_PROFILE], lay[L_NP] = sc._profile, c.profile_buckets
    lay[L_SHIFT] = sc._shift.start if c.shift_short else -1
    lay[L_C] = cal.n_channels
    lay[L_GATE] = cal._gate.start if cal.gated else -1
    lay[L_CMEAN], lay[L_CVAR] = cal._mean.start, cal._var.start
    lay[L_BVAR], lay[L_BCOUNT], lay[L_H] = cal._bvar, cal._bcount, cal.n_hourly
    lay[L_SCORE], lay[L_CSINCE], lay[L_RAVG] = cal._score.start, cal._csince.start, cal._ravg
    lay[L_EXC] = cal._exc.start if c.tail_z else -1
    lay[L_STEP] = cal._step.start if c.step_scale else -1
    lay[L_HOLD] = cal._hold  # the channel held while an alert is open (hold_shift), -1: none
    lay[L_PEND] = cal._pend  # its held events' sums (hold_release), -1: none
    lay[L_DROP] = cal._drop.start if c.drop_channel else -1  # the drop channel's expectation[T] and flag
    lay[L_HALFN] = cal._halfnormal  # the channel with a half-normal null (profile_halfnormal), -1: none
    par = np.zeros(P_N, np.float32)  # [P_N]
    par[P_MIN_VAR], par[P_CLIP], par[P_INV_NORM_W] = c.min_std**2, c.clip, 1.0 / c.norm_window
    par[P_MIN_STD] = c.min_std
    par[P_SEASON_RATE], par[P_PROFILE_RATE] = c.season_rate, c.profile_rate
    if c.shift_short:
        par[P_INV_SHIFT_SHORT], par[P_INV_SHIFT_LONG] = 1.0 / c.shift_short, 1.0 / c.shift_long
    par[P_SHIFT_LONG] = float(c.shift_long)
    par[P_INV_RAVG], par[P_RAVG_ON] = 1.0 / c.residual_avg, float(c.residual_avg != 1.0)
    par[P_LOG_C], par[P_INV_LOG_EPS], par[P_INV_SQRT2] = cal._log_c, 1.0 / math.log(EPS_P), 1.0 / math.sqrt(2.0)
    par[P_TAIL_Z], par[P_INV_Q0], par[P_N0], par[P_INV_ERR_W] = c.tail_z, 1 / cal._q0, 1 / cal._q0, 1 / c.err_window
    par[P_OPEN], par[P_CLOSE], par[P_CLOSE_AFTER] = c.open_threshold, c.close_threshold, float(c.close_after)
    par[P_WARMUP], par[P_SUPPRESS], par[P_SUPPRESS_OTHER] = float(c.warmup), float(c.suppress), float(c.suppress_other)
    par[P_RELEASE], par[P_SINCE_CAP], par[P_DROP] = cal._release_at, cal._since_cap, c.drop_step
    return lay, par


def keep_width(lay: np.ndarray) -> int:
    """Columns of a sequence step's ``keep`` (what each row's event saw); :func:`_keep_cols` names them."""
    return 5 + int(lay[L_C]) + 2 * int(lay[L_T])


@jit(inline="always")
def _keep_cols(lay: Any) -> Any:
    """``keep``'s column offsets: [count, bucket count, channel scores[C], target means[T], variances[T],
    the residual's step factor, the held channel's statistic, whether it is defined]."""
    k_mv = 2 + lay[L_C]  # target means [T], then variances [T]
    k_step = k_mv + 2 * lay[L_T]
    return k_mv, k_step, k_step + 1, k_step + 2  # ..., step factor, held statistic, held ok


@jit(inline="always")
def _scratch(lay: Any) -> Any:
    """One event's work arrays: ``r[C]``, ``ok[C]``, ``std[F]``, ``d[F]``, the gate's deviations ``dp[T]``, ``ds[T]``"""
    f, t = lay[L_F], lay[L_T]
    r, ok = np.empty(lay[L_C], np.float32), np.empty(lay[L_C], np.bool_)  # [C], [C]
    std, d = np.empty(f, np.float32), np.empty(f, np.float32)  # [F], [F]
    return r, ok, std, d, np.empty(t, np.float32), np.empty(t, np.float32)  # ..., [T], [T]


@jit(inline="always")
def _normalise(row: Any, xi: Any, lay: Any, par: Any, xn: Any, std: Any, d: Any) -> None:
    """The event against its stream's normaliser so far: ``std``, ``d`` and ``xn`` (its model input)."""
    m0, v0 = lay[L_MEAN], lay[L_VAR]
    for k in range(lay[L_F]):
        if row[0] == _ZERO:
            row[m0 + k] = xi[k]  # the first event centres its stream
        std[k] = math.sqrt(max(row[v0 + k], par[P_MIN_VAR]))
        d[k] = xi[k] - row[m0 + k]
        xn[k] = min(max(d[k] / std[k], -par[P_CLIP]), par[P_CLIP])


@jit(inline="always")
def _step_factor(row: Any, xi: Any, std: Any, lay: Any, par: Any) -> Any:
    """The normaliser's sd over the stream's step scale, the targets' mean (CalibratedChannels.step_factor;
    1 without ``step_scale``), then the step scale folds the event in."""
    if lay[L_STEP] < 0:
        return _ONE
    t, count = lay[L_T], row[0]
    p0, s0 = lay[L_STEP], lay[L_STEP] + lay[L_T]
    rate = max(_ONE / max(count, _ONE), par[P_INV_ERR_W]) * (_ONE if count >= _ONE else _ZERO)
    f = _ZERO
    for k in range(t):
        ms = row[s0 + k]
        f += std[k] / (max(max(ms, std[k] * _F(1e-3)), par[P_MIN_STD]) if count >= _TWO else std[k])
        row[s0 + k] = lerp(ms, abs(xi[k] - row[p0 + k]), rate)
        row[p0 + k] = xi[k]
    return f / _F(t)


@jit(inline="always")
def _residual(row: Any, xn: Any, lay: Any) -> Any:
    """The mean absolute residual of the normalised targets against the stream's last forecast."""
    t, fc0, err = lay[L_T], lay[L_FCAST], _ZERO
    for k in range(t):
        err += abs(xn[k] - row[fc0 + k])
    return err / _F(t)


@jit(inline="always")
def _season(row: Any, err: Any, ph: Any, lay: Any, par: Any) -> Any:
    """The residual less its running mean in the event's season bucket (that mean moves on)."""
    if not lay[L_NS]:
        return err
    im = lay[L_SEASON] + np.int64(ph[0])
    m, cn = row[im], row[im + lay[L_NS]]
    rate = max(_ONE / (cn + _ONE), par[P_SEASON_RATE])
    row[im] = m + rate * (err - m)
    row[im + lay[L_NS]] = cn + _ONE
    return err - m


@jit(inline="always")
def _drop(row: Any, xi: Any, std: Any, lay: Any, par: Any, seen: Any, base: Any) -> Any:
    """(statistic, defined) of the drop channel (CalibratedChannels.drop), after the profile's update."""
    t, d0, s0 = lay[L_T], lay[L_DROP], lay[L_SHIFT]
    first, nonneg, acc = max(_ONE / (row[0] + _ONE), par[P_INV_SHIFT_SHORT]), row[d0 + t], _ZERO
    for k in range(t):
        nonneg = nonneg if xi[k] >= _ZERO else _ZERO
    row[d0 + t] = nonneg
    ok = row[0] > _ONE and seen and nonneg > _ZERO
    for k in range(t):
        e = lerp(row[d0 + k], row[base + k] if seen else xi[k], first)
        row[d0 + k] = e
        c = max(max(row[lay[L_STEP] + t + k], std[k] * _F(1e-3)), par[P_MIN_STD]) * par[P_DROP]
        acc += math.log((e + c) / (row[s0 + k] + c)) if ok else _ZERO  # numba raises on a zero divisor
    return (acc / _F(t) if ok else _ZERO), ok


@jit(inline="always")
def _channels(row: Any, xi: Any, ph: Any, std: Any, lay: Any, par: Any, r: Any, ok: Any, dp: Any, ds: Any) -> None:
    """The profile, drop and shift channels (``r[1:]``, ``ok[1:]``) and the gate, which need no forecast."""
    t, count = lay[L_T], row[0]
    ready = count > _ONE
    p = 1 if lay[L_NS] else 0
    seen_p, base, c = False, 0, 1
    if lay[L_NP]:
        col = np.int64(ph[p])
        base, ic = lay[L_PROFILE] + col * t, lay[L_PROFILE] + lay[L_NP] * t + col
        cn, acc = row[ic], _ZERO
        seen_p = cn > _ZERO
        rate = max(_ONE / (cn + _ONE), par[P_PROFILE_RATE])
        for k in range(t):
            m = row[base + k]
            acc += abs(xi[k] - m) / std[k]
            dp[k] = xi[k] - m
            row[base + k] = m + rate * (xi[k] - m)
        row[ic] = cn + _ONE
        r[c] = acc / _F(t) if ready and seen_p else _ZERO
        ok[c] = ready and seen_p
        c += 1
    if lay[L_SHIFT] >= 0:
        s0 = lay[L_SHIFT]
        first = _ONE / (count + _ONE)
        ws, wl, acc = max(first, par[P_INV_SHIFT_SHORT]), max(first, par[P_INV_SHIFT_LONG]), _ZERO
        for k in range(t):
            ms = lerp(row[s0 + k], xi[k], ws)
            row[s0 + k] = ms
            ml = row[s0 + t + k]
            acc += abs(ms - ml) / std[k]
            ds[k] = xi[k] - ml
            row[s0 + t + k] = lerp(ml, xi[k], wl)
        if lay[L_DROP] >= 0:  # before the shift channel, which stays the last
            r[c], ok[c] = _drop(row, xi, std, lay, par, seen_p, base)
            c += 1
        r[c] = acc / _F(t) if ready else _ZERO
        ok[c] = ready
    if lay[L_GATE] >= 0:  # the profile counts only while it explained the value better than the slow mean
        g0 = lay[L_GATE]
        q = _ZERO
        for k in range(t):
            q += row[g0 + k] / max(row[g0 + t + k], _EPS12)
        q = q / _F(t)
        on = q < _ONE and row[g0 + 2 * t] > _ZERO
        sf = _ONE if seen_p else _ZERO
        nq = min(row[g0 + 2 * t] + sf, par[P_SHIFT_LONG])
        row[g0 + 2 * t] = nq
        av = (_ONE / max(nq, _ONE)) * sf
        for k in range(t):
            row[g0 + k] = lerp(row[g0 + k], dp[k] * dp[k], av)
            row[g0 + t + k] = lerp(row[g0 + t + k], ds[k] * ds[k], av)
        ok[1] = ok[1] and on


@jit(inline="always")
def _averaged(row: Any, r0: Any, count: Any, lay: Any, par: Any) -> Any:
    """The residual channel's statistic after its averaging (an EMA, exact from the first event)."""
    if par[P_RAVG_ON] > _ZERO:
        ra = lerp(row[lay[L_RAVG]], r0, max(_ONE / (count + _ONE), par[P_INV_RAVG]))
        row[lay[L_RAVG]] = ra
        return ra
    return r0


@jit(inline="always")
def _release(row: Any, rk: Any, okk: Any, count: Any, lay: Any, par: Any) -> None:
    """``hold_release`` (CalibratedChannels._release): the held channel's held events folded in after all
    where the alert resolved (row[2], as the last event left it) within ``P_RELEASE`` events of opening
    (row[4]), else dropped; then this event's statistic ``rk`` set aside if it is held."""
    p0, im, iv = lay[L_PEND], lay[L_CMEAN] + lay[L_HOLD], lay[L_CVAR] + lay[L_HOLD]
    was_open = row[2] > _ZERO
    n = row[p0 + 2]
    if not was_open and n > _ZERO:
        if row[4] < par[P_RELEASE]:
            a = max(_ONE / (count + _ONE), par[P_INV_ERR_W])
            row[iv] = (row[iv] + a * row[p0 + 1]) * (_ONE - a) ** n
            row[im] = row[im] + a * row[p0]
        row[p0], row[p0 + 1], row[p0 + 2] = _ZERO, _ZERO, _ZERO
    if was_open and okk:
        d = rk - row[im]
        row[p0] += d
        row[p0 + 1] = fma(d, d, row[p0 + 1])  # as torch's addcmul_
        row[p0 + 2] += _ONE


@jit(inline="always")
def _calibrate(row: Any, k: Any, rk: Any, okk: Any, count: Any, bucket: Any, bc: Any, lay: Any, par: Any) -> None:
    """Channel ``k``'s tail score of ``rk`` (CalibratedChannels.calibrate), then its statistics fold ``rk`` in.
    ``count`` and ``bc`` as they were before this event (a stream's and its time-of-day bucket's); the
    ``hold_shift`` channel's mean and variance stay while an alert is open (row[2], as the last event left it)."""
    h = lay[L_H]
    if k == lay[L_HOLD] and lay[L_PEND] >= 0:
        _release(row, rk, okk, count, lay, par)
    a = max(_ONE / (count + _ONE), par[P_INV_ERR_W]) * (_ONE if count > _ZERO else _ZERO)
    if k == lay[L_HOLD] and row[2] > _ZERO:
        a = _ZERO
    mean_c, var_c = row[lay[L_CMEAN] + k], row[lay[L_CVAR] + k]
    dc = rk - mean_c
    v = max(var_c, _EPS4)
    if k < h:
        ib = lay[L_BVAR] + bucket * h + k
        bv = row[ib]
        if bc > _ZERO:
            v = max(v, bv)
        ab = max(_ONE / (bc + _ONE), par[P_SEASON_RATE])
        row[ib] = bv + ab * (dc * dc - bv)
    z = dc / math.sqrt(v)
    if k == lay[L_HALFN]:  # profile_halfnormal: P(|N(0, rms^2)| > r), and that null's rate at z0
        rms = math.sqrt(v + mean_c * mean_c)
        tail = _F(math.erfc(rk / rms * par[P_INV_SQRT2]))
        inv_q = _ONE / math.erfc((mean_c + par[P_TAIL_Z] * math.sqrt(v)) / rms * par[P_INV_SQRT2])
    else:  # the Gaussian tail and rate
        tail, inv_q = math.erfc(z * par[P_INV_SQRT2]) * _HALF, par[P_INV_Q0]
    logp = math.log(tail + _EPS_P) + par[P_LOG_C]
    if lay[L_EXC] >= 0:
        ie = lay[L_EXC] + k
        exc = row[ie]
        logp = logp + math.log(max(exc * inv_q, _ONE))
        re = max(_ONE / (count + par[P_N0]), par[P_INV_ERR_W]) * (_ONE if okk else _ZERO)
        row[ie] = lerp(exc, _ONE if z > par[P_TAIL_Z] else _ZERO, re)
    logp = min(logp, _ZERO)
    row[lay[L_SCORE] + k] = min(max(logp * par[P_INV_LOG_EPS], _ZERO), _ONE) * (_ONE if okk else _ZERO)
    row[lay[L_CVAR] + k] = fma(dc, dc * a, var_c) * (_ONE - a)
    row[lay[L_CMEAN] + k] = fma(a, dc, mean_c)


@jit(inline="always")
def _fold(row: Any, d: Any, lay: Any, par: Any) -> None:
    """The normaliser folds the event in (an exact running mean/variance, then forgetting); count + 1."""
    m0, v0, count = lay[L_MEAN], lay[L_VAR], row[0]
    alpha = max(_ONE / (count + _ONE), par[P_INV_NORM_W])
    for k in range(lay[L_F]):
        row[v0 + k] = fma(d[k], d[k] * alpha, row[v0 + k]) * (_ONE - alpha)
        row[m0 + k] = fma(alpha, d[k], row[m0 + k])
    row[0] = count + _ONE


def _pre(
    aux: np.ndarray,  # [S, A] float32 C-contiguous: the slab's aux (or a wave's rows), updated in place
    rows: np.ndarray,  # [b] int64: the wave's rows of aux (distinct)
    x: np.ndarray,  # [b, F] float32
    phase: np.ndarray,  # [b, P] float32: season bucket, profile bucket (those configured)
    lay: np.ndarray,  # [L_N] int64
    par: np.ndarray,  # [P_N] float32
    x_norm: np.ndarray,  # [b, F] out
    err_o: np.ndarray,  # [b] out
) -> None:
    n_chan, h = lay[L_C], lay[L_H]
    r, ok, std, d, dp, ds = _scratch(lay)
    for i in range(rows.shape[0]):
        row = aux[rows[i]]  # [A] view
        count = row[0]
        _normalise(row, x[i], lay, par, x_norm[i], std, d)
        f = _step_factor(row, x[i], std, lay, par)
        # context channels (Scorer._context), before the normaliser folds the event in
        err = _season(row, _residual(row, x_norm[i], lay), phase[i], lay, par)
        r[0], ok[0] = err * f, True  # in step units after the baseline (f is 1 without step_scale)
        _channels(row, x[i], phase[i], std, lay, par, r, ok, dp, ds)
        # calibration of the channels (CalibratedChannels.calibrate)
        r[0] = _averaged(row, r[0], count, lay, par)
        bucket = np.int64(phase[i, 0]) if h else 0
        bc = row[lay[L_BCOUNT] + bucket] if h else _ZERO
        for k in range(n_chan):
            _calibrate(row, k, r[k], ok[k], count, bucket, bc, lay, par)
        if h:
            row[lay[L_BCOUNT] + bucket] = bc + _ONE
        err_o[i] = err
        _fold(row, d, lay, par)


def _pre_seq(
    aux: np.ndarray,  # [S, A] float32 C-contiguous: the slab's aux, updated in place
    rows: np.ndarray,  # [N] int64: a micro-batch's rows of aux, a stream's rows in its event order
    x: np.ndarray,  # [N, F] float32
    phase: np.ndarray,  # [N, P] float32
    lay: np.ndarray,  # [L_N] int64
    par: np.ndarray,  # [P_N] float32
    x_norm: np.ndarray,  # [N, F] out
    keep: np.ndarray,  # [N, 5 + C + 2T] out: count, bucket count, channel scores, target means, variances,
    # the residual's step factor, the held channel's statistic and whether it is defined
) -> None:
    """:func:`_pre` of a sequence step: everything but what needs the forecast (the residual, its season
    bucket and averaging, its channel's calibration: :func:`_post_seq`) or the alert state the stream's
    previous row leaves (the ``hold_shift`` channel's calibration, also :func:`_post_seq`), and per row
    what its event saw."""
    t, n_chan, h = lay[L_T], lay[L_C], lay[L_H]
    k_mv, k_step, k_held, k_ok = _keep_cols(lay)
    r, ok, std, d, dp, ds = _scratch(lay)
    for i in range(rows.shape[0]):
        row = aux[rows[i]]  # [A] view
        count = row[0]
        _normalise(row, x[i], lay, par, x_norm[i], std, d)
        keep[i, k_step] = _step_factor(row, x[i], std, lay, par)
        ok[0] = True
        _channels(row, x[i], phase[i], std, lay, par, r, ok, dp, ds)
        bucket = np.int64(phase[i, 0]) if h else 0
        bc = row[lay[L_BCOUNT] + bucket] if h else _ZERO
        for k in range(1, n_chan):
            if k == lay[L_HOLD]:
                keep[i, k_held], keep[i, k_ok] = r[k], _ONE if ok[k] else _ZERO
            else:
                _calibrate(row, k, r[k], ok[k], count, bucket, bc, lay, par)
                keep[i, 2 + k] = row[lay[L_SCORE] + k]
        if h:
            row[lay[L_BCOUNT] + bucket] = bc + _ONE
        keep[i, 0], keep[i, 1] = count, bc
        _fold(row, d, lay, par)
        for k in range(t):
            keep[i, k_mv + k] = row[lay[L_MEAN] + k]
            keep[i, k_mv + t + k] = row[lay[L_VAR] + k]


@jit(inline="always")
def _lifecycle(row: Any, i: Any, forecast: Any, lay: Any, par: Any, out: Any, mean: Any, var: Any) -> None:
    """The alert lifecycle (CalibratedChannels.policy) and the outputs (Scorer._outputs) of one row, its
    forecast back in input units with the normaliser's ``mean[T]`` and ``var[T]`` after its event."""
    t, n_chan, fc0 = lay[L_T], lay[L_C], lay[L_FCAST]
    steps, is_open, below, since = row[1], row[2], row[3], row[4]
    score, best, ch = _ZERO, _ZERO, 0
    for k in range(n_chan):
        sc = _ZERO if steps < _TWO else row[lay[L_SCORE] + k]
        score = max(score, sc)
        blocked = row[lay[L_CSINCE] + k] < par[P_SUPPRESS] or since < par[P_SUPPRESS_OTHER]
        if not blocked and sc > best:  # the first strongest channel, as torch's max
            best, ch = sc, k
    was_open = is_open > _ZERO
    fire = best >= par[P_OPEN] and not was_open
    below_new = _ZERO if score >= par[P_CLOSE] else below + _ONE
    resolves = was_open and below_new >= par[P_CLOSE_AFTER]
    opens = fire and steps >= par[P_WARMUP]
    now_open = (was_open or opens) and not resolves
    for k in range(n_chan):
        cs = min(row[lay[L_CSINCE] + k] + _ONE, par[P_SUPPRESS])
        row[lay[L_CSINCE] + k] = _ZERO if fire and k == ch else cs
    row[4] = min(_ZERO if fire else since + _ONE, par[P_SINCE_CAP])
    now = _ONE if now_open else _ZERO
    out[i, 2 * t + 2] = now - is_open
    row[2] = now
    row[3] = below_new if now_open else _ZERO
    row[1] = min(steps + _ONE, _F(1e7))
    for k in range(t):
        std = math.sqrt(max(var[k], par[P_MIN_VAR]))
        out[i, t + k] = fma(row[fc0 + k], std, mean[k])
        out[i, k] = fma(forecast[i, k], std, mean[k])
        row[fc0 + k] = forecast[i, k]
    out[i, 2 * t] = score
    out[i, 2 * t + 1] = now


def _post(
    aux: np.ndarray,  # [S, A] float32 C-contiguous: the slab's aux (or a wave's rows), updated in place
    rows: np.ndarray,  # [b] int64: the wave's rows of aux (distinct)
    forecast: np.ndarray,  # [b, T] float32: the model's forecast (normalised)
    lay: np.ndarray,  # [L_N] int64
    par: np.ndarray,  # [P_N] float32
    out: np.ndarray,  # [b, 2T+3] out: prediction[T], expected[T], score, anomaly, transition
) -> None:
    t, m0, v0 = lay[L_T], lay[L_MEAN], lay[L_VAR]
    for i in range(rows.shape[0]):
        row = aux[rows[i]]  # [A] view
        _lifecycle(row, i, forecast, lay, par, out, row[m0 : m0 + t], row[v0 : v0 + t])


def _post_seq(
    aux: np.ndarray,  # [S, A] float32 C-contiguous: the slab's aux, updated in place
    rows: np.ndarray,  # [N] int64: :func:`_pre_seq`'s rows
    x_norm: np.ndarray,  # [N, F] float32: :func:`_pre_seq`'s
    phase: np.ndarray,  # [N, P] float32
    keep: np.ndarray,  # [N, 5 + C + 2T] float32: :func:`_pre_seq`'s
    forecast: np.ndarray,  # [N, T] float32: the model's forecasts (normalised)
    lay: np.ndarray,  # [L_N] int64
    par: np.ndarray,  # [P_N] float32
    out: np.ndarray,  # [N, 2T+3] out
) -> None:
    """:func:`_post` of a sequence step, row by row: the residual against the forecast the stream's previous
    row left, its channel's calibration, the held channel's calibration against the alert state that row
    left, the other channels' scores as the row's event left them, then the lifecycle and the outputs."""
    t, n_chan, h = lay[L_T], lay[L_C], lay[L_H]
    k_mv, k_step, k_held, k_ok = _keep_cols(lay)
    for i in range(rows.shape[0]):
        row = aux[rows[i]]  # [A] view
        count, bc = keep[i, 0], keep[i, 1]
        r0 = _season(row, _residual(row, x_norm[i], lay), phase[i], lay, par) * keep[i, k_step]
        r0 = _averaged(row, r0, count, lay, par)
        bucket = np.int64(phase[i, 0]) if h else 0
        _calibrate(row, 0, r0, True, count, bucket, bc, lay, par)
        for k in range(1, n_chan):
            if k == lay[L_HOLD]:
                _calibrate(row, k, keep[i, k_held], keep[i, k_ok] > _ZERO, count, bucket, bc, lay, par)
            else:
                row[lay[L_SCORE] + k] = keep[i, 2 + k]
        mv = keep[i, k_mv : k_mv + 2 * t]  # [2T]
        _lifecycle(row, i, forecast, lay, par, out, mv[:t], mv[t:])


calibrated_pre = jit(_pre)
calibrated_post = jit(_post)
calibrated_pre_seq = jit(_pre_seq)
calibrated_post_seq = jit(_post_seq)


def warm_up(lay: np.ndarray, par: np.ndarray, width: int) -> None:
    """Compile both loops (or load them from numba's cache) now, not in the first batch (~3 s without a cache)."""
    aux, f, t, rows = np.zeros((0, width), _F), int(lay[L_F]), int(lay[L_T]), np.zeros(0, np.int64)
    calibrated_pre(aux, rows, np.zeros((0, f), _F), np.zeros((0, 2), _F), lay, par, np.zeros((0, f), _F),
                   np.zeros(0, _F))  # fmt: skip
    calibrated_post(aux, rows, np.zeros((0, t), _F), lay, par, np.zeros((0, 2 * t + 3), _F))
    keep = np.zeros((0, keep_width(lay)), _F)
    calibrated_pre_seq(aux, rows, np.zeros((0, f), _F), np.zeros((0, 2), _F), lay, par, np.zeros((0, f), _F), keep)
    calibrated_post_seq(aux, rows, np.zeros((0, f), _F), np.zeros((0, 2), _F), keep, np.zeros((0, t), _F), lay,
                        par, np.zeros((0, 2 * t + 3), _F))  # fmt: skip
