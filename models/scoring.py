"""Online, per-stream normalisation and anomaly scoring, vectorised over a batch of streams.

All state is a row of the slab's ``aux`` tensor, so scoring runs on the same device as the
model and needs no per-stream Python objects. Everything is causal: an event is normalised and
scored with statistics of the events before it, then folded into them.

Score: the residual ``e_t = mean |x_t - forecast_{t-1}|`` (normalised units) is compared with
its own history. ``z = (short_mean(e) - long_mean(e)) / long_std(e)`` gives a Gaussian tail
probability ``p``; the anomaly score is ``log(p + 1e-10) / log(1e-10)`` clipped to [0, 1] (an
"anomaly likelihood" on a log scale: 0.5 means p = 1e-5), so scores keep their order far into
the tail instead of saturating at 1.0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError

__all__ = ["Scorer", "ScoringConfig"]

_EPS_P = 1e-10
_LOG_EPS_P = math.log(_EPS_P)


@dataclass(frozen=True)
class ScoringConfig:
    """Horizons are in events of one stream; thresholds are on the [0, 1] anomaly score."""

    norm_window: int = 1000
    err_window: int = 1000
    err_short: int = 4
    warmup: int = 150
    open_threshold: float = 0.5
    close_threshold: float = 0.3
    close_after: int = 10
    clip: float = 8.0
    min_std: float = 1e-3
    err_var_prior: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.close_threshold <= self.open_threshold <= 1.0:
            raise ConfigError(
                f"need 0 <= close_threshold ({self.close_threshold}) <= open_threshold ({self.open_threshold}) <= 1"
            )
        for name in ("norm_window", "err_window", "err_short", "close_after"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scorer:
    """Stateless operator over ``aux[B, A]`` rows; the layout depends only on ``n_features``.

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

    def __init__(self, config: ScoringConfig, n_features: int) -> None:
        self.config = config
        f = n_features
        self.n_features = f
        # aux layout: [count, steps, err_mean, err_var, err_short, open, below, mean[F], var[F], fcast[F]]
        self._mean = slice(7, 7 + f)
        self._var = slice(7 + f, 7 + 2 * f)
        self._fcast = slice(7 + 2 * f, 7 + 3 * f)
        self.size = 7 + 3 * f
        # packed output columns of post(): prediction[F], expected[F], score, anomaly, transition
        self.PRED = slice(0, f)
        self.EXPECTED = slice(f, 2 * f)
        self.SCORE, self.ANOMALY, self.TRANSITION = 2 * f, 2 * f + 1, 2 * f + 2
        self.out_size = 2 * f + 3

    def init_row(self) -> Tensor:
        row = torch.zeros(self.size)  # [A]
        row[3] = self.config.err_var_prior  # err_var: a prior worth one residual
        return row

    def pre(self, aux: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Normalise ``x[B, F]`` with the stats so far, measure the residual, update the stats.

        Returns the model input ``x_norm[B, F]`` and the residual ``err[B]``; updates ``aux`` in place.
        """
        cfg = self.config
        count = aux[:, 0]  # [B] view
        mean, var = aux[:, self._mean], aux[:, self._var]  # [B, F] views
        # the first event centres its stream (x_norm = 0, err = 0 against the zero forecast)
        mean.copy_(torch.where((count == 0).unsqueeze(1), x, mean))  # [B, F]
        std = var.clamp_min(cfg.min_std**2).sqrt_()  # [B, F]
        x_norm = (x - mean).div_(std).clamp_(-cfg.clip, cfg.clip)  # [B, F]
        err = (x_norm - aux[:, self._fcast]).abs_().mean(1)  # [B]
        # EMA with a 1/n start: an exact running mean/variance until norm_window events, then forgetting
        alpha = (count + 1.0).reciprocal_().clamp_min_(1.0 / cfg.norm_window).unsqueeze(1)  # [B, 1]
        d = x - mean  # [B, F]
        var.addcmul_(d, d * alpha).mul_(1.0 - alpha)  # [B, F]
        mean.addcmul_(alpha, d)  # [B, F]
        count.add_(1.0)
        return x_norm, err

    def post(self, aux: Tensor, err: Tensor, forecast: Tensor) -> Tensor:
        """Score ``err[B]``, keep the model's ``forecast[B, F]`` (normalised), run the alert policy.

        Returns ``[B, 2F+3]``: prediction (input units), expected, score, anomaly, transition
        (+1 opened, -1 resolved); see the column attributes.
        """
        cfg = self.config
        _, steps, em, ev, es, is_open, below = aux[:, :7].unbind(1)  # [B] views
        es.lerp_(err, 1.0 / cfg.err_short)  # [B] short-horizon mean residual
        # compare with the residual history *before* this event, then fold this event in
        z = (es - em).mul_(ev.clamp_min(1e-8).rsqrt_())  # [B]
        tail = torch.special.erfc(z.mul_(1.0 / math.sqrt(2.0))).mul_(0.5)  # [B]
        score = tail.add_(_EPS_P).log_().mul_(1.0 / _LOG_EPS_P).clamp_(0.0, 1.0)  # [B]
        score.mul_(steps >= 2)  # [B] needs two residuals of history
        a = (steps + 1.0).reciprocal_().clamp_min_(1.0 / cfg.err_window).mul_(steps >= 1)  # [B] 0 before any residual
        d = err - em  # [B]
        ev.addcmul_(d, d * a).mul_(1.0 - a)
        em.addcmul_(a, d)
        # alert policy with hysteresis: open above open_threshold once warm, resolve after
        # close_after consecutive events below close_threshold
        anomaly = (score >= cfg.open_threshold) & (steps >= cfg.warmup)  # [B]
        was_open = is_open > 0  # [B]
        below_new = (below + 1.0).mul_(score < cfg.close_threshold)  # [B]
        opens = anomaly & ~was_open  # [B]
        resolves = was_open & (below_new >= cfg.close_after)  # [B]
        now_open = (was_open | opens) & ~resolves  # [B]
        is_open.copy_(now_open)
        below.copy_(below_new.mul_(now_open))
        steps.add_(1.0).clamp_max_(1e7)
        # forecasts back to input units with the updated stats
        mean = aux[:, self._mean]  # [B, F]
        std = aux[:, self._var].clamp_min(cfg.min_std**2).sqrt_()  # [B, F]
        fcast = aux[:, self._fcast]  # [B, F]
        expected = torch.addcmul(mean, fcast, std)  # [B, F]
        prediction = torch.addcmul(mean, forecast, std)  # [B, F]
        fcast.copy_(forecast)
        transition = opens.to(score.dtype) - resolves.to(score.dtype)  # [B]
        flags = torch.stack((score, anomaly.to(score.dtype), transition), 1)  # [B, 3]
        return torch.cat((prediction, expected, flags), 1)  # [B, 2F+3]
