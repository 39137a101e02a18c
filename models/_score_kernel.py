"""The plain :class:`~models.scoring.Scorer`'s per-wave work as compiled loops over a wave's rows, for the CPU.

Why: on the CPU at real-time rates a micro-batch is small, and each wave (one step of distinct
streams) spent ~200-500 µs in ``Scorer.pre`` and ``Scorer.post``: dozens of small torch ops whose
cost is per-op dispatch, not arithmetic (docs/benchmarks.md, issue 17). numba compiles these loops to
machine code with LLVM at the first call (cached on disk); one call costs a few µs whatever the
wave's size. They cover the default configuration (the residual channel with ``K`` horizons,
``fold_clip``, suppression with any factor, the alert policy) for raw and masked input; every other
option (context channels, calibrated mode, adapter, ``suppress_other``, ``open_n`` > 1,
``max_window``) and CUDA keep the torch path (``Scorer.kernel`` says which).

The arithmetic mirrors the torch ops one by one in float32: every constant is a float32 (torch casts
a Python scalar to the tensor's dtype; numba would promote float32 op Python float to float64), and
where torch's CPU kernels fuse a multiply and an add (``addcmul``, ``lerp``: the x86 wheels' kernels
are built with FMA) the loop uses one fused multiply-add too. Sums over a row's features are
sequential, torch's order for up to 4 and for 8 features (on AVX512; other widths may differ in the
last bit). Three library functions differ in the last bit: torch's float32 ``sqrt`` on the CPU
rounds ~0.7 % of values one ulp down (the loops' is correctly rounded), and ``erfc``/``log`` are
libm's here. So the outputs and the state agree to float32 rounding and the alerts are the same
(``tests/test_score_kernel.py``; with a correctly rounded ``sqrt`` in torch the state is bitwise
equal).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._jit import fma, jit, lerp
from .scoring_config import EPS_P

__all__ = ["eligible", "layout", "post_rows", "pre_masked_rows", "pre_rows", "warm_up"]

_F = np.float32
_ZERO, _ONE, _HALF, _FOUR = _F(0.0), _F(1.0), _F(0.5), _F(4.0)

# the fixed aux columns of models.scoring.Scorer (asserted equal there)
_COUNT, _STEPS, _OPEN, _BELOW, _SINCE = range(5)
# the layout vector `lay` (built by layout()): first columns of the blocks, then the widths
L_SHORT, L_EMEAN, L_EVAR, L_MEAN, L_VAR, L_FCAST, L_SEEN, L_RSCALE, L_LAST, L_F, L_T, L_K = range(12)
# the parameter vector `p` (float32, built by layout())
P_MIN_VAR, P_CLIP, P_INV_NORM_W, P_INV_ERR_W, P_N_T, P_EPS_RSCALE, P_EPS_VAR = range(7)
P_INV_SQRT2, P_EPS_P, P_INV_LOG_EPS, P_FOLD, P_SUPPRESS, P_FACTOR, P_LEVEL = range(7, 14)
P_OPEN, P_CLOSE, P_CLOSE_AFTER, P_WARMUP, P_STEPS_MAX = range(14, 19)
N_PARAMS = 19


@jit
def pre_rows(
    aux: np.ndarray,  # [S, A] float32: the slab's aux (or a wave's rows), updated in place
    rows: np.ndarray,  # [b] int64: the wave's rows of aux (distinct)
    x: np.ndarray,  # [b, F] float32
    lay: np.ndarray,  # [12] int64: the layout (L_*)
    p: np.ndarray,  # [N_PARAMS] float32 (P_*)
    x_norm: np.ndarray,  # [b, F] out
    err: np.ndarray,  # [b] out
    mv: np.ndarray,  # [b, 2T] out, or [0, 2T]: each row's target means and variances after this event
) -> None:
    """``Scorer.pre`` without context channels: normalise, residual, fold into the statistics.

    ``mv`` (a sequence step, :meth:`models.scoring.Scorer.pre_seq`): the statistics :func:`post_rows` turns
    this row's forecast back into input units with, kept per row because a stream's later rows of the
    same call move them on before its post runs."""
    mean0, var0, fc0, nf, nt = lay[L_MEAN], lay[L_VAR], lay[L_FCAST], lay[L_F], lay[L_T]
    min_var, clip, inv_nw, n_t = p[P_MIN_VAR], p[P_CLIP], p[P_INV_NORM_W], p[P_N_T]
    keep = mv.shape[0] > 0
    for i in range(rows.shape[0]):
        j = rows[i]
        c = aux[j, _COUNT]
        first = c == _ZERO  # the first event centres its stream
        alpha = max(_ONE / (c + _ONE), inv_nw)  # exact running mean/variance, then forgetting
        acc = _ZERO
        for f in range(nf):
            m = x[i, f] if first else aux[j, mean0 + f]
            v = aux[j, var0 + f]
            d = x[i, f] - m
            xn = min(max(d / math.sqrt(max(v, min_var)), -clip), clip)
            x_norm[i, f] = xn
            if f < nt:
                acc += abs(xn - aux[j, fc0 + f])
            aux[j, var0 + f] = fma(d, d * alpha, v) * (_ONE - alpha)
            aux[j, mean0 + f] = fma(alpha, d, m)
            if keep and f < nt:
                mv[i, f] = aux[j, mean0 + f]
                mv[i, nt + f] = aux[j, var0 + f]
        err[i] = acc / n_t
        aux[j, _COUNT] = c + _ONE


@jit(inline="always")
def _masked_inputs(
    aux: Any, j: Any, xi: Any, lay: Any, p: Any, xn: Any, obs: Any, seen_before: Any, mv: Any, keep: Any
) -> None:
    """A masked row's forecast-free part: impute, normalise, fold the observed values into the statistics.
    ``xn``/``obs`` get the model input and mask, ``seen_before`` each feature's count before the event;
    ``keep``: ``mv`` gets the means and variances after it (a sequence step's :func:`post_masked_seq_rows`)."""
    mean0, var0, nf = lay[L_MEAN], lay[L_VAR], lay[L_F]
    seen0, last0 = lay[L_SEEN], lay[L_LAST]
    min_var, clip, inv_nw = p[P_MIN_VAR], p[P_CLIP], p[P_INV_NORM_W]
    for f in range(nf):
        o = math.isfinite(xi[f])
        of = _ONE if o else _ZERO
        s = aux[j, seen0 + f]
        x_imp = xi[f] if o else aux[j, last0 + f]  # imputed with the last observed value
        m = x_imp if o and s == _ZERO else aux[j, mean0 + f]  # the first observed value centres it
        v = aux[j, var0 + f]
        diff = x_imp - m
        d = diff * of  # 0 where missing: no statistics update
        xn[f] = min(max(diff / math.sqrt(max(v, min_var)), -clip), clip)
        obs[f] = of
        seen_before[f] = s
        alpha = max(_ONE / (s + _ONE), inv_nw) * of
        aux[j, var0 + f] = fma(d, d * alpha, v) * (_ONE - alpha)
        aux[j, mean0 + f] = fma(alpha, d, m)
        aux[j, last0 + f] = x_imp
        aux[j, seen0 + f] = s + of
        if keep:
            mv[f] = aux[j, mean0 + f]
            mv[nf + f] = aux[j, var0 + f]
    aux[j, _COUNT] = aux[j, _COUNT] + _ONE


@jit(inline="always")
def _masked_residual(aux: Any, j: Any, xn: Any, obs: Any, seen_before: Any, lay: Any, p: Any) -> Any:
    """A masked row's residual per feature over its own running scale (which then folds it in), against
    the stream's last forecast: ``(err, channel, channel_z)``, the observed features' mean and the largest."""
    fc0, nf, rs0 = lay[L_FCAST], lay[L_F], lay[L_RSCALE]
    inv_ew, eps_rs = p[P_INV_ERR_W], p[P_EPS_RSCALE]
    n_obs = _ZERO
    acc = _ZERO
    best, best_z = -1, _ZERO
    for f in range(nf):
        of = obs[f]
        s = seen_before[f]
        rs = aux[j, rs0 + f]
        res = abs(xn[f] - aux[j, fc0 + f])
        z = res / max(rs, eps_rs)
        n_obs += of
        acc += z * of
        zm = z if of > _ZERO else -_ONE
        if f == 0 or zm > best_z:  # torch's max: the first of equal maxima
            best, best_z = f, zm
        # residual scale: from the second observation, winsorised at 4x
        beta = max(_ONE / max(s, _ONE), inv_ew) * of * (_ONE if s > _ZERO else _ZERO)
        aux[j, rs0 + f] = lerp(rs, min(res, rs * _FOUR), beta)
    return acc / max(n_obs, _ONE), best if n_obs > _ZERO else -1, best_z


@jit
def pre_masked_rows(
    aux: np.ndarray,  # [S, A] float32: the slab's aux (or a wave's rows), updated in place
    rows: np.ndarray,  # [b] int64: the wave's rows of aux (distinct)
    x: np.ndarray,  # [b, F] float32, NaN = missing
    lay: np.ndarray,  # [12] int64
    p: np.ndarray,  # [N_PARAMS] float32
    x_norm: np.ndarray,  # [b, F] out
    obs_f: np.ndarray,  # [b, F] out: 1 observed, 0 missing
    err: np.ndarray,  # [b] out
    channel: np.ndarray,  # [b] int64 out: the feature with the largest normalised residual, -1 none
    channel_z: np.ndarray,  # [b] out
    seen_o: np.ndarray,  # [b, F] out, or [0, F]: a sequence step's counts before each event
    mv: np.ndarray,  # [b, 2F] out, or [0, 2F]: and its means and variances after it
) -> None:
    """``Scorer.pre_masked``: impute, normalise, residual per feature over its own scale, statistics.

    A sequence step (``mv`` has rows, :meth:`models.scoring.Scorer.pre_seq`): only the inputs and the
    statistics, and what :func:`post_rows` needs to measure the residuals after the forecasts."""
    seq = mv.shape[0] > 0
    sb = np.empty(lay[L_F], np.float32)  # [F] counts before the event
    for i in range(rows.shape[0]):
        j = rows[i]
        if seq:
            _masked_inputs(aux, j, x[i], lay, p, x_norm[i], obs_f[i], seen_o[i], mv[i], True)
            continue
        _masked_inputs(aux, j, x[i], lay, p, x_norm[i], obs_f[i], sb, sb, False)
        err[i], channel[i], channel_z[i] = _masked_residual(aux, j, x_norm[i], obs_f[i], sb, lay, p)


@jit
def post_rows(
    aux: np.ndarray,  # [S, A] float32: the slab's aux (or a wave's rows), updated in place
    rows: np.ndarray,  # [b] int64: the wave's rows of aux (distinct)
    err: np.ndarray,  # [b] float32
    forecast: np.ndarray,  # [b, T] float32 (normalised)
    rates: np.ndarray,  # [K] float32: 1 / horizon
    lay: np.ndarray,  # [12] int64
    p: np.ndarray,  # [N_PARAMS] float32
    flags: np.ndarray,  # [3] bool: fold_clip on, suppress on, suppress_factor 0
    out: np.ndarray,  # [b, 2T+3] out: prediction[T], expected[T], score, anomaly, transition
    x_norm: np.ndarray,  # [b, F] float32, or [0, F]: a sequence step's normalised rows (pre_rows's)
    mv: np.ndarray,  # [b, 2T] float32, or [0, 2T]: their statistics (pre_rows's)
    obs: np.ndarray,  # [b, F] float32, or [0, F]: a masked sequence step's mask (pre_masked_rows's)
    seen: np.ndarray,  # [b, F] float32, or [0, F]: and its counts before each event
    channel: np.ndarray,  # [b] int64 out, or [0]: a masked sequence step's channel (pre_masked's output)
    channel_z: np.ndarray,  # [b] out, or [0]
) -> None:
    """``Scorer.post`` and ``Scorer._outputs`` without context channels, calibration or adapter.

    A sequence step (``mv`` has rows; :meth:`models.scoring.Scorer.post_seq`): ``pre_rows`` (or
    ``pre_masked_rows``) ran for every row first, so a row's residual is measured here, against the
    forecast its stream's previous row left (as the pre loop measures it: the same sums in the same
    order; masked, with the residual scales and the channel), and its statistics come from ``mv``."""
    sh0, em0, ev0, mean0, var0, fc0 = lay[L_SHORT], lay[L_EMEAN], lay[L_EVAR], lay[L_MEAN], lay[L_VAR], lay[L_FCAST]
    nt, nk = lay[L_T], lay[L_K]
    min_var, inv_ew, eps_var, inv_sqrt2 = p[P_MIN_VAR], p[P_INV_ERR_W], p[P_EPS_VAR], p[P_INV_SQRT2]
    eps_p, inv_log_eps, fold = p[P_EPS_P], p[P_INV_LOG_EPS], p[P_FOLD]
    suppress, factor, level, steps_max = p[P_SUPPRESS], p[P_FACTOR], p[P_LEVEL], p[P_STEPS_MAX]
    open_t, close_t, close_after, warmup = p[P_OPEN], p[P_CLOSE], p[P_CLOSE_AFTER], p[P_WARMUP]
    fold_on, suppress_on, factor_zero = flags[0], flags[1], flags[2]
    two = _ONE + _ONE
    seq, masked, n_t = mv.shape[0] > 0, obs.shape[0] > 0, p[P_N_T]
    for i in range(rows.shape[0]):
        j = rows[i]
        steps, is_open, below, since = aux[j, _STEPS], aux[j, _OPEN], aux[j, _BELOW], aux[j, _SINCE]
        if masked:
            e, channel[i], channel_z[i] = _masked_residual(aux, j, x_norm[i], obs[i], seen[i], lay, p)
        elif seq:
            acc = _ZERO
            for t in range(nt):
                acc += abs(x_norm[i, t] - aux[j, fc0 + t])
            e = acc / n_t
        else:
            e = err[i]
        first = _ONE / (steps + _ONE)  # short means exact (1/n) until each horizon has filled
        a = _ZERO if steps < _ONE else max(first, inv_ew)  # fold rate, 0 before any residual
        score = _ZERO
        for k in range(nk):
            short = lerp(aux[j, sh0 + k], e, max(rates[k], first))
            aux[j, sh0 + k] = short
            # compare with the short mean's history before this event, then fold this event in
            ev, em = aux[j, ev0 + k], aux[j, em0 + k]
            sd = math.sqrt(max(ev, eps_var))
            d = short - em
            tail = math.erfc((d / sd) * inv_sqrt2) * _HALF
            sc = min(max(math.log(tail + eps_p) * inv_log_eps, _ZERO), _ONE)
            score = sc if k == 0 else max(score, sc)
            if fold_on:
                d = min(d, sd * fold)  # winsorise upward excursions
            aux[j, ev0 + k] = fma(d, d * a, ev) * (_ONE - a)
            aux[j, em0 + k] = fma(a, d, em)
        if steps < two:  # needs two residuals of history
            score = _ZERO
        if suppress_on:  # scores shrink for `suppress` events after one reached suppress_level
            if since < suppress:
                score = _ZERO if factor_zero else score * factor
            since = _ZERO if score >= level else since + _ONE
            aux[j, _SINCE] = min(since, suppress)
        # alert policy with hysteresis
        anomaly = score >= open_t and steps >= warmup
        was_open = is_open > _ZERO
        below_new = _ZERO if score >= close_t else below + _ONE
        opens = anomaly and not was_open
        resolves = was_open and below_new >= close_after
        now_open = (was_open or opens) and not resolves
        now = _ONE if now_open else _ZERO
        out[i, 2 * nt + 2] = now - is_open  # +1 opened, -1 resolved
        aux[j, _OPEN] = now
        aux[j, _BELOW] = below_new if now_open else _ZERO
        aux[j, _STEPS] = min(steps + _ONE, steps_max)
        # forecasts back to input units with the updated statistics
        for t in range(nt):
            m = mv[i, t] if seq else aux[j, mean0 + t]
            std = math.sqrt(max(mv[i, nt + t] if seq else aux[j, var0 + t], min_var))
            out[i, nt + t] = fma(aux[j, fc0 + t], std, m)  # expected
            out[i, t] = fma(forecast[i, t], std, m)  # prediction
            aux[j, fc0 + t] = forecast[i, t]
        out[i, 2 * nt] = score
        out[i, 2 * nt + 1] = _ONE if anomaly else _ZERO


def eligible(sc: Any) -> bool:
    """Whether the loops cover this :class:`~models.scoring.Scorer`'s configuration: the residual channel
    alone (no calibration, context channels, adapter, per-channel suppression, peak novelty or k-of-n
    opening); masked input with one forecast per feature."""
    c = sc.config
    extra = c.calibrated or c.n_phases or c.shift_short or c.adapter_lr or c.suppress_other or c.max_window
    return not extra and c.open_n == 1 and (sc.n_targets == sc.n_features or not sc.masked)


def layout(sc: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(lay, p, rates, flags)`` of an :func:`eligible` scorer: its column layout (``L_*``), its numbers
    as float32 (``P_*``; torch casts a Python scalar to the tensor's dtype), its horizons' rates and
    ``[fold_clip on, suppression on, suppression factor 0]``."""
    c, f, t = sc.config, sc.n_features, sc.n_targets
    masked = sc.masked
    lay = np.array(
        [
            sc._short.start,
            sc._emean.start,
            sc._evar.start,
            sc._mean.start,
            sc._var.start,
            sc._fcast.start,
            sc._seen.start if masked else 0,
            sc._rscale.start if masked else 0,
            sc._last.start if masked else 0,
            f,
            t,
            sc.n_scales,
        ],
        np.int64,
    )  # [12]
    p = np.zeros(N_PARAMS, np.float32)  # [P]
    p[P_MIN_VAR] = c.min_std**2
    p[P_CLIP] = c.clip
    p[P_INV_NORM_W] = 1.0 / c.norm_window
    p[P_INV_ERR_W] = 1.0 / c.err_window
    p[P_N_T] = t
    p[P_EPS_RSCALE] = 1e-3
    p[P_EPS_VAR] = 1e-8
    p[P_INV_SQRT2] = 1.0 / math.sqrt(2.0)
    p[P_EPS_P] = EPS_P
    p[P_INV_LOG_EPS] = 1.0 / math.log(EPS_P)
    p[P_FOLD] = c.fold_clip
    p[P_SUPPRESS] = c.suppress
    p[P_FACTOR] = c.suppress_factor
    p[P_LEVEL] = c.suppress_level
    p[P_OPEN] = c.open_threshold
    p[P_CLOSE] = c.close_threshold
    p[P_CLOSE_AFTER] = c.close_after
    p[P_WARMUP] = c.warmup
    p[P_STEPS_MAX] = 1e7
    rates = np.array([1.0 / k for k in c.scales], np.float32)  # [K]
    flags = np.array([c.fold_clip > 0, c.suppress > 0, c.suppress_factor == 0.0], np.bool_)  # [3]
    return lay, p, rates, flags


def warm_up(
    lay: np.ndarray, p: np.ndarray, rates: np.ndarray, flags: np.ndarray, width: int, out_size: int, masked: bool
) -> None:
    """Compile the loops a scorer uses (or load them from numba's cache) on a wave of no rows, in the
    layouts a wave has (C-contiguous), so that the first batch does not wait for it."""
    f, t = int(lay[L_F]), int(lay[L_T])
    aux, x, e = np.zeros((0, width), np.float32), np.zeros((0, f), np.float32), np.zeros(0, np.float32)
    rows = np.zeros(0, np.int64)
    mv = np.zeros((0, 2 * t), np.float32)
    if masked:
        pre_masked_rows(aux, rows, x, lay, p, x.copy(), x.copy(), e.copy(), rows.copy(), e.copy(), x.copy(), mv)
    else:
        pre_rows(aux, rows, x, lay, p, x.copy(), e.copy(), mv)
    fc, out = np.zeros((0, t), np.float32), np.zeros((0, out_size), np.float32)
    post_rows(aux, rows, e, fc, rates, lay, p, flags, out, x.copy(), mv, x.copy(), x.copy(), rows.copy(), e.copy())
