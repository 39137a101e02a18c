"""The Scorer, one file: one class over one slab-row layout; per-stream normalisation and scoring.

Online, per-stream normalisation and anomaly scoring, vectorised over a batch of streams; its
configuration and the named presets are in :mod:`models.scoring_config`, the calibrated mode's
channels in :mod:`models.calibrated`.

All state is a row of the slab's ``aux`` tensor, so scoring runs on the same device as the
model and needs no per-stream Python objects. Everything is causal: an event is normalised and
scored with statistics of the events before it, then folded into them.

Score ("anomaly likelihood", multi-scale):

1. the residual ``e_t = mean |x_t - forecast_{t-1}|`` in normalised units;
2. for every averaging horizon ``k`` in ``(err_short, *err_scales)`` a short mean ``s_k`` of
   ``e`` (exponential, rate ``1/k``) is compared with its own long-run mean and variance
   (horizon ``err_window``): ``z_k = (s_k - mean_k) / std_k``; the largest ``z_k`` wins;
3. the Gaussian tail probability ``p`` of that ``z`` becomes ``log(p + 1e-10) / log(1e-10)``
   clipped to [0, 1] (0.5 means p = 1e-5), so scores keep their order far into the tail;
4. the long-run statistics fold in each value winsorised at ``fold_clip`` standard deviations,
   so one burst does not blind the stream to the next one;
5. suppression: after an emitted score reaches ``suppress_level`` the stream's scores are
   multiplied by ``suppress_factor`` for the next ``suppress`` events (an alert reports the onset
   of unusual behaviour once instead of every event of it). With ``suppress_other`` > 0 each
   channel (residual, profile, shift) has its own counter: the channel that alerted stays quiet for
   ``suppress`` events, the others only for ``suppress_other`` (a different kind of anomaly soon
   after a first one still alerts).

The alert policy works on the emitted score: no alert during a stream's first ``warmup``
events; an alert opens at ``open_threshold`` and resolves after ``close_after`` consecutive
events below ``close_threshold``.

On the CPU, the residual-only configurations (the default one, for raw and masked input) run
``pre``/``pre_masked``/``post`` as compiled loops over the wave's rows (:mod:`models._score_kernel`,
the same arithmetic at a few µs per wave instead of ~60 dispatched torch ops); ``Scorer.kernel``
says whether a scorer does. The calibrated scoring (the bundled sensor detector) has loops of its own
(:mod:`models._calibrated_kernel`, instead of ~200 ops; ``Scorer._cal_kernel``).
``SEQSTREAM_SCORER_KERNEL=0`` turns both off.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import Tensor

from . import _calibrated_kernel as _ck
from . import _jit
from . import _score_kernel as _sk
from .calibrated import CalibratedChannels
from .errors import ConfigError
from .scoring_config import EPS_P, ScoringConfig

__all__ = ["Scorer"]

_EPS_P = EPS_P
MASKED_RSCALE_PRIOR = 0.5  # prior mean |residual| (normalised units) of a masked feature
_LOG_EPS_P = math.log(_EPS_P)


class Scorer:
    """Stateless operator over ``aux[B, A]`` rows; the layout depends only on ``n_features``
    and the number of averaging horizons.

    Works in place on views of ``aux`` (few, fused-friendly ops: at batch 1 the per-op
    dispatch cost, not arithmetic, dominates).

    Example:
        >>> sc = Scorer(ScoringConfig(), n_features=1)
        >>> aux = sc.init_row().expand(2, -1).clone()            # [2, A]
        >>> x_n, err = sc.pre(aux, torch.tensor([[1.0], [2.0]]))  # [2, 1], [2]
        >>> out = sc.post(aux, err, x_n)                          # forecast = input
        >>> out[:, sc.SCORE].tolist()
        [0.0, 0.0]
    """

    # fixed columns: count (pre), steps (post), open, below, since (events since a suppressing score)
    COUNT, STEPS, OPEN, BELOW, SINCE = range(5)

    def __init__(self, config: ScoringConfig, n_features: int, *, n_targets: int = 0, masked: bool = False) -> None:
        self.config = config
        f, k = n_features, len(config.scales)
        t = n_targets or f  # the forecast covers the first t normalised features
        if not 1 <= t <= f:
            raise ConfigError(f"n_targets must be in [1, n_features={f}], got {n_targets}")
        self.n_features = f
        self.n_targets = t
        self.n_scales = k
        self.masked = masked
        # aux layout: [count, steps, open, below, since, short[K], mean[K], var[K], peak[K],
        #              x_mean[F], x_var[F], fcast[T]] (+ masked: [seen[F], rscale[F], last[F]])
        o = 5
        self._short = slice(o, o + k)
        self._emean = slice(o + k, o + 2 * k)
        self._evar = slice(o + 2 * k, o + 3 * k)
        self._peak = slice(o + 3 * k, o + 4 * k)
        o += 4 * k
        self._mean = slice(o, o + f)
        self._var = slice(o + f, o + 2 * f)
        self._fcast = slice(o + 2 * f, o + 2 * f + t)
        o += 2 * f + t
        if masked:
            self._seen = slice(o, o + f)  # observed values per feature
            self._rscale = slice(o + f, o + 2 * f)  # running mean |residual| per feature (normalised units)
            self._last = slice(o + 2 * f, o + 3 * f)  # last observed value per feature (input units)
            o += 3 * f
        # context channels: [season mean[Ns], season count[Ns]], [profile mean[Np * T], profile
        # count[Np]], [profile gate: slow EMA[T], profile mean square[T], EMA mean square[T], n[1]],
        # [shift short[T], shift long[T]], then per extra channel (profile, shift):
        # [calibration mean[2], calibration var[2], score[2]], then with suppress_other one
        # suppression counter per channel (residual[, profile, shift])
        c = config
        if masked and (c.n_phases or c.shift_short):
            raise ConfigError("season/profile/shift channels are not supported with masked (multivariate NaN) input")
        self.n_phases = c.n_phases
        self._season = o
        o += 2 * c.season_buckets
        self._profile = o
        o += c.profile_buckets * (t + 1)
        self.gated = bool(c.profile_buckets and c.profile_gate_slow)
        self._gate = slice(o, o + 3 * t + 1) if self.gated else slice(o, o)
        o += 3 * t + 1 if self.gated else 0
        self._shift = slice(o, o + 2 * t) if c.shift_short else slice(o, o)
        o += 2 * t if c.shift_short else 0
        self.calibrated: CalibratedChannels | None = None
        if c.calibrated:  # its own calibration, scores and blocks (models/calibrated.py)
            if masked:
                raise ConfigError("calibrated scoring is not supported with masked (multivariate NaN) input")
            self.n_channels = 1 + int(c.profile_buckets > 0) + int(c.drop_channel) + int(c.shift_short > 0)
            gated = bool(c.profile_buckets and c.shift_short)
            hourly = 1 + int(c.profile_buckets > 0)  # per-event channels (residual, profile): time-of-day variance
            self.calibrated = CalibratedChannels(c, o, self.n_channels, t, gated, hourly)
            o = self.calibrated.end
            self._cmean = self._cvar = self._cscore = self._csince = slice(o, o)
        else:
            self._cmean, self._cvar, self._cscore = slice(o, o + 2), slice(o + 2, o + 4), slice(o + 4, o + 6)
            o += 6 if (c.profile_buckets or c.shift_short) else 0
            self.n_channels = 3 if (c.profile_buckets or c.shift_short) else 1
            self._csince = slice(o, o + self.n_channels) if c.suppress_other else slice(o, o)
            o += self.n_channels if c.suppress_other else 0
        # k-of-n opening: the last open_n "score >= open_threshold" flags, a ring, and its write position
        # (its own counter: steps stops counting at 1e7, float32 counts stop being exact at 2^24)
        self._ring = slice(o, o + c.open_n) if c.open_n > 1 else slice(o, o)
        self._ring_pos = o + c.open_n
        o += c.open_n + 1 if c.open_n > 1 else 0
        # online adapter: [a[T], b[T], the model's raw forecast[T]]
        if c.adapter_lr and masked:
            raise ConfigError(
                "the online adapter (adapter_lr > 0) is not supported with masked (multivariate NaN) input"
            )
        self._adapt = slice(o, o + 3 * t) if c.adapter_lr else slice(o, o)
        o += 3 * t if c.adapter_lr else 0
        self.size = o
        self._rates = torch.tensor([1.0 / s for s in config.scales])  # [K]
        # 0-dim float32 constants: a Python scalar operand costs a dtype conversion (an extra
        # allocation and copy) per op; a same-dtype 0-dim CPU tensor is passed as a scalar, on CUDA too
        c = config
        k32 = self._k = {
            name: torch.tensor(v, dtype=torch.float32)
            for name, v in {
                "zero": 0.0,
                "one": 1.0,
                "two": 2.0,
                "half": 0.5,
                "inv_sqrt2": 1.0 / math.sqrt(2.0),
                "eps_p": _EPS_P,
                "inv_log_eps": 1.0 / _LOG_EPS_P,
                "suppress": float(c.suppress),
                "suppress_other": float(c.suppress_other),
                "gate_high": c.profile_gate_high,
                "gate_inv_span": 1.0 / (c.profile_gate_high - c.profile_gate_low),
                "suppress_factor": c.suppress_factor,
                "suppress_level": c.suppress_level,
                "open": c.open_threshold,
                "close": c.close_threshold,
                "close_after": float(c.close_after),
                "warmup": float(c.warmup),
                "open_k": float(c.open_k),
                "adapter_lr": c.adapter_lr,
            }.items()
        }
        self._one, self._zero = k32["one"], k32["zero"]
        self._rates_on: dict[torch.device, Tensor] = {}
        # context channels' calibration rates and weights (profile, shift), and the target columns
        self._ctx = torch.tensor(
            [
                [1.0 / c.profile_window, 1.0 / c.shift_window],
                [c.profile_weight if c.profile_buckets else 0.0, c.shift_weight if c.shift_short else 0.0],
            ]
        )  # [2, 2]
        self._ctx_on: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}
        # packed output columns of post(): prediction[T], expected[T], score, anomaly, transition
        self.PRED = slice(0, t)
        self.EXPECTED = slice(t, 2 * t)
        self.SCORE, self.ANOMALY, self.TRANSITION = 2 * t, 2 * t + 1, 2 * t + 2
        self.out_size = 2 * t + 3
        self._kernel_setup()

    def _kernel_setup(self) -> None:
        """Decide once whether ``pre``/``pre_masked``/``post`` run as compiled CPU loops: the plain
        scorer's (:mod:`models._score_kernel`: the residual channel, the default config and every
        bundled checkpoint but the sensor one) or the calibrated scorer's (:mod:`models._calibrated_kernel`);
        every other option keeps the torch code, and so does CUDA (checked per call).
        ``SEQSTREAM_SCORER_KERNEL=0`` keeps torch everywhere (A/B, debugging)."""
        assert (self.COUNT, self.STEPS, self.OPEN, self.BELOW, self.SINCE) == (0, 1, 2, 3, 4)  # the loops'
        on = os.environ.get("SEQSTREAM_SCORER_KERNEL", "1") != "0" and _jit.AVAILABLE
        self.kernel = on and _sk.eligible(self)
        # (lay, p, rates, flags) of the plain loops; (lay, par) of the calibrated ones. Both compiled (or
        # loaded from numba's cache) now, not in the first batch
        self._plain = _sk.layout(self) if self.kernel else None
        self._cal_kernel: tuple[np.ndarray, np.ndarray] | None = None
        # what the plain loops take in place of a sequence step's arrays in a wave's call (none)
        self._no_seq = (np.zeros((0, self.n_features), np.float32), np.zeros((0, 2 * self.n_targets), np.float32))
        f0 = np.zeros((0, self.n_features), np.float32)  # [0, F]
        self._no_mask = (f0, f0, np.zeros(0, np.int64), np.zeros(0, np.float32))  # (masked sequence steps only)
        if self._plain is not None:
            _sk.warm_up(*self._plain, self.size, self.out_size, self.masked)
        elif on and _ck.eligible(self):
            self._cal_kernel = _ck.layout(self)  # [L_N] int64, [P_N] float32
            _ck.warm_up(*self._cal_kernel, self.size)

    @staticmethod
    def _cpu_f32(aux: Tensor, *xs: Tensor) -> bool:
        """Float32 CPU tensors without grad, as the loops take them (``is_cpu``: ~60 ns against ~400 for
        ``device.type``; this runs twice per wave)."""
        f32 = torch.float32
        return aux.is_cpu and aux.dtype == f32 and all(x.dtype == f32 and not x.requires_grad for x in xs)

    def _on_kernel(self, aux: Tensor, *xs: Tensor) -> bool:
        """Run this call as the plain scorer's loop (``kernel``: the switch, which tests turn off too)."""
        return self.kernel and self._plain is not None and self._cpu_f32(aux, *xs)

    def _on_cal_kernel(self, aux: Tensor, x: Tensor) -> bool:
        """Run this call as the calibrated scorer's loop: its rows contiguous (the slab's gather makes them so)."""
        return self._cal_kernel is not None and self._cpu_f32(aux, x) and aux.is_contiguous()

    @property
    def in_place(self) -> bool:
        """Whether ``pre``/``pre_masked``/``post`` take ``rows=``: the slab's whole ``aux`` and the wave's rows
        of it, updated where they are instead of gathered and scattered (the compiled loops run them; the
        torch code needs the rows gathered). For float32 CPU tensors only, as the loops are."""
        return (self.kernel and self._plain is not None) or self._cal_kernel is not None

    def pre_seq(self, aux: Tensor, x: Tensor, rows: Tensor, phase: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`pre` of a sequence step: every row of a micro-batch in one call, a stream's rows in their
        order (``rows[B]``: their slots in the slab's whole ``aux``; every loop that runs :attr:`in_place` has
        this form too, masked as :meth:`pre_masked_seq`).

        Returns ``x_norm[B, F]`` and what each row's event saw, ``keep[B, K]``: the target statistics after
        it (and, calibrated, its count, its time-of-day bucket's count and the other channels' scores).
        :meth:`post_seq` needs both, because a stream's later rows move the state on before the forecasts
        exist. The residuals are measured in :meth:`post_seq`, against those forecasts.
        """
        b, t = x.shape[0], self.n_targets
        x_norm = np.empty((b, self.n_features), np.float32)  # [B, F]
        if self._cal_kernel is not None:
            lay, par = self._cal_kernel
            keep = np.empty((b, _ck.keep_width(lay)), np.float32)  # [B, 5 + C + 2T]
            ph = phase.contiguous() if phase is not None else torch.zeros((b, 2))  # [B, P]
            _ck.calibrated_pre_seq(
                aux.numpy(), rows.numpy(), x.contiguous().numpy(), ph.numpy(), lay, par, x_norm, keep
            )
            return torch.from_numpy(x_norm), torch.from_numpy(keep)
        assert self._plain is not None
        lay, p, _, _ = self._plain
        mv = np.empty((b, 2 * t), np.float32)  # [B, 2T]
        err = np.empty(b, np.float32)  # [B] (against forecasts not made yet: unused)
        _sk.pre_rows(aux.numpy(), rows.numpy(), x.contiguous().numpy(), lay, p, x_norm, err, mv)
        return torch.from_numpy(x_norm), torch.from_numpy(mv)

    def post_seq(
        self, aux: Tensor, x_norm: Tensor, keep: Tensor, forecast: Tensor, rows: Tensor, phase: Tensor | None = None
    ) -> Tensor:
        """:meth:`post` of a sequence step over :meth:`pre_seq`'s rows with their ``forecast[B, T]``: the same
        ``[B, 2T+3]``, row by row as the waves would have made it."""
        b = forecast.shape[0]
        out = np.empty((b, self.out_size), np.float32)  # [B, 2T+3]
        fc = forecast.contiguous().numpy()  # [B, T]
        if self._cal_kernel is not None:
            ph = phase.contiguous() if phase is not None else torch.zeros((b, 2))  # [B, P]
            _ck.calibrated_post_seq(
                aux.numpy(), rows.numpy(), x_norm.numpy(), ph.numpy(), keep.numpy(), fc, *self._cal_kernel, out
            )
            return torch.from_numpy(out)
        assert self._plain is not None
        lay, p, rates, flags = self._plain
        no_err = np.empty(0, np.float32)  # [0] (measured in the loop)
        _sk.post_rows(
            aux.numpy(), rows.numpy(), no_err, fc, rates, lay, p, flags, out, x_norm.numpy(), keep.numpy(),
            *self._no_mask,
        )  # fmt: skip
        return torch.from_numpy(out)

    def pre_masked_seq(self, aux: Tensor, x: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`pre_masked` of a sequence step (see :meth:`pre_seq`): ``x_norm[B, F]`` and ``observed[B, F]``
        (the model input), and for :meth:`post_masked_seq` each feature's count before the row's event
        ``seen[B, F]`` and the means and variances after it ``mv[B, 2F]``; the residuals, their scales and
        the channel wait for the forecasts."""
        assert self._plain is not None
        lay, p, _, _ = self._plain
        b, f = x.shape
        x_norm, obs, seen = (np.empty((b, f), np.float32) for _ in range(3))  # [B, F] each
        mv = np.empty((b, 2 * f), np.float32)  # [B, 2F]
        err, chan_z, chan = np.empty(b, np.float32), np.empty(b, np.float32), np.empty(b, np.int64)  # (unused)
        _sk.pre_masked_rows(
            aux.numpy(), rows.numpy(), x.contiguous().numpy(), lay, p, x_norm, obs, err, chan, chan_z, seen, mv
        )
        t = torch.from_numpy
        return t(x_norm), t(obs), t(seen), t(mv)

    def post_masked_seq(
        self, aux: Tensor, ctx: tuple[Tensor, Tensor, Tensor, Tensor], forecast: Tensor, rows: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`post` of a masked sequence step over :meth:`pre_masked_seq`'s rows (``ctx``, its output) with
        their ``forecast[B, F]``: ``[B, 2F+3]``, and the ``channel[B]`` and ``channel_z[B]`` that
        :meth:`pre_masked` returns, row by row as the waves would have made them."""
        assert self._plain is not None
        lay, p, rates, flags = self._plain
        x_norm, obs, seen, mv = (a.numpy() for a in ctx)
        b = forecast.shape[0]
        out = np.empty((b, self.out_size), np.float32)  # [B, 2F+3]
        chan, chan_z = np.empty(b, np.int64), np.empty(b, np.float32)  # [B], [B]
        no_err = np.empty(0, np.float32)  # [0] (measured in the loop)
        _sk.post_rows(
            aux.numpy(), rows.numpy(), no_err, forecast.contiguous().numpy(), rates, lay, p, flags, out, x_norm, mv,
            obs, seen, chan, chan_z,
        )  # fmt: skip
        t = torch.from_numpy
        return t(out), t(chan), t(chan_z)

    def init_row(self) -> Tensor:
        row = torch.zeros(self.size)  # [A]
        row[self._evar] = self.config.err_var_prior  # a prior worth one residual
        row[self.SINCE] = float(self.config.suppress)  # nothing to suppress yet
        if self.masked:
            row[self._rscale] = MASKED_RSCALE_PRIOR
        if self.config.profile_buckets or self.config.shift_short:
            row[self._cvar] = self.config.err_var_prior
        row[self._csince] = float(self.config.suppress)  # no channel suppressed yet
        if self.calibrated is not None:
            self.calibrated.init_row(row)
        return row

    def phases(self, ts: np.ndarray) -> np.ndarray:
        """Bucket of each event time ``ts[B]`` (epoch s) in the season and profile periods: ``[B, P]``.

        Computed on the host in float64 (float32 cannot hold epoch seconds to the second) and
        appended to the event's values, so the device still gets one copy per batch.
        """
        c = self.config
        cols = [
            np.floor(np.mod(ts, period) / (period / n))
            for n, period in ((c.season_buckets, c.season_period), (c.profile_buckets, c.profile_period))
            if n
        ]
        return np.stack(cols, 1).astype(np.float32) if cols else np.zeros((len(ts), 0), np.float32)

    def _ctx_for(self, dev: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        # device copies made once (creating them inside a captured CUDA graph would be illegal)
        got = self._ctx_on.get(dev)
        if got is None:
            c = self._ctx.to(dev)
            got = self._ctx_on[dev] = (c[0], c[1], torch.arange(self.n_targets, device=dev))
        return got

    def _rates_for(self, dev: torch.device) -> Tensor:
        r = self._rates_on.get(dev)
        if r is None:
            r = self._rates_on[dev] = self._rates.to(dev)
        return r

    def pre(
        self, aux: Tensor, x: Tensor, phase: Tensor | None = None, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Normalise ``x[B, F]`` with the stats so far, measure the residual, update the stats.

        ``phase[B, P]`` holds the event-time buckets of :meth:`phases` when the config has season or
        profile channels; calling without it then raises :class:`ConfigError` rather than silently
        scoring without those channels.
        Returns the model input ``x_norm[B, F]`` and the residual ``err[B]``; updates ``aux`` in place
        (``rows[B]``: those rows of it, see :attr:`in_place`).
        """
        if self.n_phases and (phase is None or phase.shape[1] != self.n_phases):
            raise ConfigError(
                f"this scoring has {self.n_phases} event-time phase column(s) (season/profile channels); "
                "pass phase=Tensor(Scorer.phases(ts)) or turn those channels off"
            )
        if self._on_cal_kernel(aux, x):
            return self._pre_kernel(aux, x, phase, rows)
        if self._on_kernel(aux, x):  # (phase: only with context channels: torch)
            b = x.shape[0]
            x_norm_k, err_k = np.empty((b, self.n_features), np.float32), np.empty(b, np.float32)  # [B, F], [B]
            assert self._plain is not None
            lay, p, _, _ = self._plain
            _sk.pre_rows(aux.numpy(), _jit.loop_rows(rows, b), x.numpy(), lay, p, x_norm_k, err_k, self._no_seq[1])
            return torch.from_numpy(x_norm_k), torch.from_numpy(err_k)
        _jit.torch_path_rows(rows, "the torch scorer")
        cfg, one = self.config, self._one
        count = aux[:, self.COUNT]  # [B] view
        mean, var = aux[:, self._mean], aux[:, self._var]  # [B, F] views
        # the first event centres its stream (x_norm = 0, err = 0 against the zero forecast)
        mean.copy_(torch.where((count == self._zero).unsqueeze(1), x, mean))  # [B, F]
        std = var.clamp_min(cfg.min_std**2).sqrt_()  # [B, F]
        d = x - mean  # [B, F]
        x_norm = (d / std).clamp_(-cfg.clip, cfg.clip)  # [B, F]
        t = self.n_targets
        resid = x_norm[:, :t] - aux[:, self._fcast]  # [B, T] against the (adapted) forecast
        err = resid.abs().mean(1)  # [B]
        step = None
        if self.calibrated is not None and cfg.step_scale:
            step = self.calibrated.step_factor(aux, x[:, :t], std[:, :t], count)  # [B]
        if cfg.adapter_lr:
            self._adapt_step(aux, resid, count)
        if self.n_phases or cfg.shift_short or self.calibrated is not None:
            err = self._context(aux, x, std, count, err, phase, step)  # [B]
        # EMA with a 1/n start: an exact running mean/variance until norm_window events, then forgetting
        alpha = (count + one).reciprocal_().clamp_min_(1.0 / cfg.norm_window).unsqueeze(1)  # [B, 1]
        var.addcmul_(d, d * alpha).mul_(one - alpha)  # [B, F]
        mean.addcmul_(alpha, d)  # [B, F]
        count.add_(one)
        return x_norm, err

    def _pre_kernel(self, aux: Tensor, x: Tensor, phase: Tensor | None, rows: Tensor | None) -> tuple[Tensor, Tensor]:
        """:meth:`pre` of the calibrated scorer as the compiled loop (CPU, ``aux`` contiguous)."""
        assert self._cal_kernel is not None
        b = x.shape[0]
        x_norm, err = torch.empty((b, self.n_features)), torch.empty(b)  # [b, F], [b]
        ph = phase.contiguous() if phase is not None else torch.zeros((b, 2))  # [b, P]
        _ck.calibrated_pre(
            aux.numpy(),
            _jit.loop_rows(rows, b),
            x.contiguous().numpy(),
            ph.numpy(),
            *self._cal_kernel,
            x_norm.numpy(),
            err.numpy(),
        )
        return x_norm, err

    def _adapt_step(self, aux: Tensor, resid: Tensor, count: Tensor) -> None:
        """One normalised-LMS step of each stream's forecast correction on the residual it just saw."""
        t, clip, one = self.n_targets, self.config.adapter_clip, self._one
        ad = aux[:, self._adapt]  # [B, 3T] view
        a, b, raw = ad[:, :t], ad[:, t : 2 * t], ad[:, 2 * t :]  # [B, T] views
        # no forecast before a stream's second event; the step is normalised by the input's power
        live = (count > self._zero).unsqueeze(1)  # [B, 1]
        step = (resid * self._k["adapter_lr"] / (one + raw * raw)) * live  # [B, T]
        a.addcmul_(step, raw).clamp_(-clip, clip)  # d(err^2)/da = -2 e f
        b.add_(step).clamp_(-clip, clip)  # d(err^2)/db = -2 e

    def _context(
        self,
        aux: Tensor,
        x: Tensor,
        std: Tensor,
        count: Tensor,
        err: Tensor,
        phase: Tensor | None,
        step: Tensor | None = None,
    ) -> Tensor:
        """Context channels of one event, before the normaliser folds it in; returns ``err[B]``.

        ``step[B]`` (calibrated ``step_scale``): the factor that takes the residual channel from the
        normaliser's units to the stream's step units, applied after its time-of-day baseline is
        taken off (the baseline stays in the forecaster's units, as the residual it learns from).

        * season: the residual minus its own running mean at this time of day, so a forecaster
          that always misses the same daily transition does not alarm at it every day;
        * profile: distance of the value from its running mean at this time of the week (a
          seasonal break the one-step forecaster cannot see);
        * shift: distance between a short and a long running mean of the value (a level shift);
        * drop (calibrated ``drop_step``): a fall of a never-negative series below what its profile
          expected, as a ratio (:meth:`CalibratedChannels.drop`).

        Profile and shift distances (in units of the value's running std) get their own tail
        calibration; their weighted scores are stored for :meth:`post` to combine with the residual's.
        """
        cfg, one, t = self.config, self._one, self.n_targets
        rates, weights, cols = self._ctx_for(x.device)  # [2], [2], [T]
        xt, sd = x[:, :t], std[:, :t]  # [B, T], [B, T]
        ready = count > one  # [B] two events of history, as the residual's own score
        p, r_prof, r_shift = 0, None, None
        if cfg.season_buckets:
            assert phase is not None  # pre() refuses a call without it
            n = cfg.season_buckets
            i_m = (phase[:, p].long() + self._season).unsqueeze(1)  # [B, 1]
            m, cn = aux.gather(1, i_m), aux.gather(1, i_m + n)  # [B, 1], [B, 1]
            e = err.unsqueeze(1)  # [B, 1]
            rate = (cn + one).reciprocal_().clamp_min_(cfg.season_rate)  # [B, 1]
            aux.scatter_(1, i_m, m + rate * (e - m))
            aux.scatter_(1, i_m + n, cn + one)
            err = (e - m).squeeze(1)  # [B]; m is 0 in a bucket not seen yet
            p += 1
        if cfg.profile_buckets:
            assert phase is not None
            n = cfg.profile_buckets
            col = phase[:, p].long()  # [B]
            i_m = self._profile + col.unsqueeze(1) * t + cols  # [B, T]
            i_c = (self._profile + n * t + col).unsqueeze(1)  # [B, 1]
            m, cn = aux.gather(1, i_m), aux.gather(1, i_c)  # [B, T], [B, 1]
            r_prof = ((xt - m).abs() / sd).mean(1) * (ready & (cn[:, 0] > self._zero))  # [B]
            if self.gated:
                g = aux[:, self._gate]  # [B, 3T + 1] view
                ema, vp, vs = g[:, :t], g[:, t : 2 * t], g[:, 2 * t : 3 * t]  # [B, T] views
                n_q = g[:, 3 * t]  # [B] view: events measured so far (capped at the window)
                ema.copy_(torch.where((count == self._zero).unsqueeze(1), xt, ema))  # [B, T] first event
                # q: mean square of x minus its hour-of-week mean over that of x minus the slow level,
                # before this event; 1 (gate 0.5) until a bucket seen before comes round again
                # (masked_fill with a Python scalar: torch.where would reject the 0-dim CPU `one` on CUDA)
                q = (vp / vs.clamp_min(1e-12)).mean(1).masked_fill_(n_q <= self._zero, 1.0)  # [B]
                gate = ((self._k["gate_high"] - q) * self._k["gate_inv_span"]).clamp_(0.0, 1.0)  # [B]
                seen = cn > self._zero  # [B, 1] the bucket has a mean to compare with
                n_q.add_(seen[:, 0]).clamp_max_(float(cfg.profile_gate_window))  # [B]
                av = n_q.clamp_min(1.0).reciprocal().unsqueeze(1) * seen  # [B, 1] exact mean, then EMA; 0: skip
                d_p, d_s = xt - m, xt - ema  # [B, T], [B, T]
                vp.lerp_(d_p * d_p, av)  # [B, T]
                vs.lerp_(d_s * d_s, av)  # [B, T]
                ema.lerp_(xt, (count + one).reciprocal().clamp_min_(1.0 / cfg.profile_gate_slow).unsqueeze(1))  # [B, T]
            d_prof, seen_p = xt - m, cn[:, 0] > self._zero  # [B, T], [B] for the calibrated gate
            rate = (cn + one).reciprocal_().clamp_min_(cfg.profile_rate)  # [B, 1]
            m = m + rate * (xt - m)  # [B, T] this event folded in (the drop channel's expectation)
            aux.scatter_(1, i_m, m)
            aux.scatter_(1, i_c, cn + one)
            p += 1
        if cfg.shift_short:
            sh = aux[:, self._shift]  # [B, 2T] view
            ms, ml = sh[:, :t], sh[:, t:]  # [B, T] views
            first = (count + one).reciprocal().unsqueeze(1)  # [B, 1]
            ms.lerp_(xt, first.clamp_min(1.0 / cfg.shift_short))
            r_shift = ((ms - ml).abs() / sd).mean(1) * ready  # [B]
            d_slow = xt - ml  # [B, T] against the slow mean before this event (the calibrated gate)
            ml.lerp_(xt, first.clamp_min(1.0 / cfg.shift_long))
        if self.calibrated is not None:
            cal = self.calibrated
            r0 = err if step is None else err * step  # [B]
            rs, oks = [r0], [torch.ones_like(err, dtype=torch.bool)]  # the residual: defined from the start
            if r_prof is not None:
                ok_p = ready & seen_p  # [B]
                if cal.gated:
                    ok_p = ok_p & cal.gate(aux, d_prof, d_slow, seen_p.to(d_prof.dtype))
                rs.append(r_prof)
                oks.append(ok_p)
            if cfg.drop_channel:  # the profile's and the shift's running means as a ratio
                r_drop, ok_drop = cal.drop(aux, xt, m, seen_p, ms, sd, count)
                rs.append(r_drop)
                oks.append(ok_drop)
            if r_shift is not None:
                rs.append(r_shift)
                oks.append(ready)
            bucket = phase[:, 0] if phase is not None and cal.n_buckets else None  # [B] season bucket of the day
            cal.calibrate(aux, torch.stack(rs, 1), torch.stack(oks, 1), count, bucket, aux[:, self.OPEN])  # [B, C]
            return err
        if r_prof is None and r_shift is None:
            return err
        zero = torch.zeros_like(err)  # [B]
        r = torch.stack((zero if r_prof is None else r_prof, zero if r_shift is None else r_shift), 1)  # [B, 2]
        em, ev = aux[:, self._cmean], aux[:, self._cvar]  # [B, 2] views
        d = r - em  # [B, 2]
        z = d / ev.clamp_min(1e-8).sqrt()  # [B, 2]
        tail = torch.special.erfc(z * self._k["inv_sqrt2"]) * self._k["half"]  # [B, 2]
        sc = (tail + self._k["eps_p"]).log_().mul_(self._k["inv_log_eps"]).clamp_(0.0, 1.0)  # [B, 2]
        sc.masked_fill_(~ready.unsqueeze(1), 0.0)
        a = torch.maximum((count + one).reciprocal().unsqueeze(1), rates)  # [B, 2]
        a.masked_fill_((count < one).unsqueeze(1), 0.0)
        ev.addcmul_(d, d * a).mul_(one - a)
        em.addcmul_(a, d)
        if self.gated:
            sc[:, 0].mul_(gate)  # [B] the profile's score, gated
        aux[:, self._cscore] = sc * weights
        return err

    def pre_masked(
        self, aux: Tensor, x: Tensor, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """:meth:`pre` for ``x[B, F]`` where NaN means missing (a scorer built with ``masked=True``).

        A missing value is imputed with the feature's last observed value (the model also gets the
        mask, so it knows) and leaves the feature's statistics alone. Each feature's residual is
        divided by its own running mean absolute residual, so a usually well-predicted feature that
        goes wrong stands out; ``err`` is the mean of those over the observed features only.

        Returns ``x_norm[B, F]`` (imputed), ``observed[B, F]`` (float 0/1), ``err[B]`` and the
        feature with the largest normalised residual ``channel[B]`` (-1: none observed) with that
        residual ``channel_z[B]``.
        """
        if self._on_kernel(aux, x):
            b, f = x.shape
            x_norm_k, obs_k = np.empty((b, f), np.float32), np.empty((b, f), np.float32)  # [B, F], [B, F]
            err_k, chan_z = np.empty(b, np.float32), np.empty(b, np.float32)  # [B], [B]
            chan = np.empty(b, np.int64)  # [B]
            assert self._plain is not None
            lay, p, _, _ = self._plain
            _sk.pre_masked_rows(
                aux.numpy(), _jit.loop_rows(rows, b), x.numpy(), lay, p, x_norm_k, obs_k, err_k, chan, chan_z,
                *self._no_seq,
            )  # fmt: skip
            t = torch.from_numpy
            return t(x_norm_k), t(obs_k), t(err_k), t(chan), t(chan_z)
        _jit.torch_path_rows(rows, "the torch scorer")
        cfg, one = self.config, self._one
        obs = torch.isfinite(x)  # [B, F] bool
        obs_f = obs.float()  # [B, F]
        seen = aux[:, self._seen]  # [B, F] view
        last = aux[:, self._last]  # [B, F] view
        mean, var = aux[:, self._mean], aux[:, self._var]  # [B, F] views
        x_imp = torch.where(obs, x, last)  # [B, F]
        # a feature's first observed value centres it
        mean.copy_(torch.where(obs & (seen == self._zero), x_imp, mean))  # [B, F]
        std = var.clamp_min(cfg.min_std**2).sqrt_()  # [B, F]
        d = (x_imp - mean) * obs_f  # [B, F] 0 where missing (no statistics update)
        x_norm = ((x_imp - mean) / std).clamp_(-cfg.clip, cfg.clip)  # [B, F]
        rscale = aux[:, self._rscale]  # [B, F] view
        res = (x_norm - aux[:, self._fcast]).abs_()  # [B, F]
        z = res / rscale.clamp_min(1e-3)  # [B, F]
        n_obs = obs_f.sum(1)  # [B]
        err = (z * obs_f).sum(1) / n_obs.clamp_min(1.0)  # [B]
        zm = torch.where(obs, z, torch.full_like(z, -1.0))  # [B, F]
        channel_z, channel = zm.max(1)  # [B], [B]
        channel = torch.where(n_obs > 0, channel, torch.full_like(channel, -1))  # [B]
        # statistics of observed features only: exact 1/n start per feature, then forgetting
        alpha = (seen + one).reciprocal_().clamp_min_(1.0 / cfg.norm_window).mul_(obs_f)  # [B, F]
        var.addcmul_(d, d * alpha).mul_(one - alpha)  # [B, F]
        mean.addcmul_(alpha, d)  # [B, F]
        # residual scale: from the second observation, winsorised so a burst does not blind it
        beta = (seen.clamp_min(1.0)).reciprocal_().clamp_min_(1.0 / cfg.err_window)  # [B, F]
        beta = beta.mul_(obs_f).mul_((seen > self._zero).float())  # [B, F]
        rscale.lerp_(torch.minimum(res, rscale * 4.0), beta)  # [B, F]
        last.copy_(x_imp)  # [B, F]
        seen.add_(obs_f)  # [B, F]
        aux[:, self.COUNT].add_(one)
        return x_norm, obs_f, err, channel, channel_z

    def post(self, aux: Tensor, err: Tensor, forecast: Tensor, rows: Tensor | None = None) -> Tensor:
        """Score ``err[B]``, keep the model's ``forecast[B, F]`` (normalised), run the alert policy.

        Returns ``[B, 2T+3]``: prediction (input units), expected, score, anomaly, transition
        (+1 opened, -1 resolved); see the column attributes. ``T`` is ``n_targets`` (= ``F`` by default).
        """
        b = forecast.shape[0]
        if self._on_kernel(aux, err, forecast):
            out_k = np.empty((b, self.out_size), np.float32)  # [B, 2T+3]
            assert self._plain is not None
            lay, p, rates, flags = self._plain
            _sk.post_rows(
                aux.numpy(), _jit.loop_rows(rows, b), err.numpy(), forecast.numpy(), rates, lay, p, flags, out_k,
                *self._no_seq, *self._no_mask,
            )  # fmt: skip
            return torch.from_numpy(out_k)
        if self._on_cal_kernel(aux, forecast):
            assert self._cal_kernel is not None
            out = aux.new_empty((b, self.out_size))  # [B, 2T+3]
            _ck.calibrated_post(
                aux.numpy(), _jit.loop_rows(rows, b), forecast.contiguous().numpy(), *self._cal_kernel, out.numpy()
            )
            return out
        _jit.torch_path_rows(rows, "the torch scorer")
        cfg, k, one = self.config, self._k, self._one
        steps, is_open, below, since = (aux[:, i] for i in (self.STEPS, self.OPEN, self.BELOW, self.SINCE))  # [B]
        if self.calibrated is not None:  # channels already calibrated in pre(); the alert lifecycle
            score, now_open, below_new = self.calibrated.policy(aux, steps, is_open, below, since)  # [B] x3
            return self._outputs(aux, forecast, score, now_open, now_open, below_new)
        short, em, ev = aux[:, self._short], aux[:, self._emean], aux[:, self._evar]  # [B, K] views
        # short means of the residual, exact (1/n) until each horizon has filled
        first = (steps + one).reciprocal_().unsqueeze(1)  # [B, 1]
        short.lerp_(err.unsqueeze(1).expand_as(short), torch.maximum(self._rates_for(aux.device), first))  # [B, K]
        # compare with each short mean's history *before* this event, then fold this event in
        sd = ev.clamp_min(1e-8).sqrt_()  # [B, K]
        d = short - em  # [B, K]
        z = d / sd  # [B, K]
        tail = torch.special.erfc(z.mul_(k["inv_sqrt2"])).mul_(k["half"])  # [B, K]
        score = tail.add_(k["eps_p"]).log_().mul_(k["inv_log_eps"]).clamp_(0.0, 1.0)  # [B, K]
        if cfg.max_window:
            # novelty: how far each short mean exceeds its own recent (decaying) peak
            peak = aux[:, self._peak]  # [B, K]
            ratio = (short / peak.clamp_min(1e-6)).mul_(1.0 / cfg.max_ratio).clamp_(max=1.0)  # [B, K]
            score = score * ratio.pow_(cfg.max_power)
            torch.maximum(peak.mul_(math.exp(-1.0 / cfg.max_window)), short, out=peak)
        score = score.amax(1) if self.n_scales > 1 else score[:, 0]  # [B]
        if cfg.suppress_other:
            chans = score.unsqueeze(1)  # [B, 1] residual only without context channels
            if self.n_channels > 1:
                chans = torch.cat((chans, aux[:, self._cscore]), 1)  # [B, C] residual, profile, shift
        elif cfg.profile_buckets or cfg.shift_short:
            score = torch.maximum(score, aux[:, self._cscore].amax(1))  # [B] the strongest channel
        score.masked_fill_(steps < k["two"], 0.0)  # [B] needs two residuals of history
        # [B, 1] fold rate, 0 before any residual
        a = first.clamp_min_(1.0 / cfg.err_window).masked_fill_((steps < one).unsqueeze(1), 0.0)
        if cfg.fold_clip:
            d = torch.minimum(d, sd.mul_(cfg.fold_clip))  # winsorise upward excursions
        ev.addcmul_(d, d * a).mul_(one - a)
        em.addcmul_(a, d)
        if cfg.suppress_other:
            # per channel: the one that alerted is quiet for `suppress` events, every channel for
            # `suppress_other`; the score is the strongest channel not suppressed (ties: the first)
            csince = aux[:, self._csince]  # [B, C] view
            chans = chans.masked_fill((steps < k["two"]).unsqueeze(1), 0.0)  # [B, C]
            blocked = (csince < k["suppress"]) | (since < k["suppress_other"]).unsqueeze(1)  # [B, C]
            score, ch = chans.masked_fill_(blocked, 0.0).max(1)  # [B], [B]
            fired = score >= k["suppress_level"]  # [B]
            csince.add_(one).clamp_max_(float(cfg.suppress))  # [B, C]
            hit = torch.zeros_like(csince, dtype=torch.bool).scatter_(1, ch.unsqueeze(1), fired.unsqueeze(1))  # [B, C]
            csince.masked_fill_(hit, 0.0)  # [B, C] the channel that alerted starts again
            since.add_(one).masked_fill_(fired, 0.0).clamp_max_(float(cfg.suppress))  # [B] every channel's block
        elif cfg.suppress:
            # scores shrink for `suppress` events after one reached suppress_level
            if cfg.suppress_factor == 0.0:
                score.masked_fill_(since < k["suppress"], 0.0)  # [B]
            else:
                score = torch.where(since < k["suppress"], score * k["suppress_factor"], score)  # [B]
            since.add_(one).masked_fill_(score >= k["suppress_level"], 0.0).clamp_max_(float(cfg.suppress))
        # alert policy with hysteresis: open above open_threshold once warm, resolve after
        # close_after consecutive events below close_threshold
        hot = score >= k["open"]  # [B]
        if cfg.open_n > 1:  # k of the last n events must be hot
            ring, at = aux[:, self._ring], aux[:, self._ring_pos]  # [B, N] view, [B] view
            ring.scatter_(1, at.long().unsqueeze(1), hot.unsqueeze(1).to(ring.dtype))  # [B, N]
            at.add_(one).remainder_(float(cfg.open_n))  # [B] the next slot to write
            hot = ring.sum(1) >= k["open_k"]  # [B]
        anomaly = hot & (steps >= k["warmup"])  # [B]
        was_open = is_open > self._zero  # [B]
        below_new = (below + one).masked_fill_(score >= k["close"], 0.0)  # [B]
        opens = anomaly & ~was_open  # [B]
        resolves = was_open & (below_new >= k["close_after"])  # [B]
        now_open = (was_open | opens) & ~resolves  # [B]
        return self._outputs(aux, forecast, score, anomaly, now_open, below_new.masked_fill_(~now_open, 0.0))

    def _outputs(
        self, aux: Tensor, forecast: Tensor, score: Tensor, anomaly: Tensor, now_open: Tensor, below: Tensor
    ) -> Tensor:
        """Store the alert state, keep the forecast and pack the output row ``[B, 2T+3]``."""
        cfg, one = self.config, self._one
        steps, is_open = aux[:, self.STEPS], aux[:, self.OPEN]  # [B] views
        f = self.n_targets
        out = aux.new_empty((aux.shape[0], self.out_size))  # [B, 2T+3]
        # transition = now_open - was_open: +1 opened, -1 resolved (is_open holds exactly 0 or 1)
        trans = out[:, self.TRANSITION]
        trans.copy_(now_open).sub_(is_open)
        is_open.copy_(now_open)
        aux[:, self.BELOW].copy_(below)
        steps.add_(one).clamp_max_(1e7)
        # forecasts back to input units with the updated stats
        mean = aux[:, self._mean][:, :f]  # [B, T]
        std = aux[:, self._var][:, :f].clamp_min(cfg.min_std**2).sqrt_()  # [B, T]
        fcast = aux[:, self._fcast]  # [B, T]
        if cfg.adapter_lr:  # the stream's own correction of the model's forecast
            ad = aux[:, self._adapt]  # [B, 3T] view
            ad[:, 2 * f :].copy_(forecast)  # [B, T] the raw forecast, for the next step's update
            forecast = torch.addcmul(ad[:, f : 2 * f], forecast, ad[:, :f] + one)  # [B, T] (1 + a) f + b
        torch.addcmul(mean, fcast, std, out=out[:, f : 2 * f])  # expected
        torch.addcmul(mean, forecast, std, out=out[:, :f])  # prediction
        fcast.copy_(forecast)
        out[:, self.SCORE].copy_(score)
        out[:, self.ANOMALY].copy_(anomaly)
        return out
