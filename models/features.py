"""From a stream's decoded vectors to model inputs, and from forecasts to outputs and alerts.

A :class:`Features` object is the per-source part of :class:`~models.runner.Runner`: which rows
are valid, how a row (plus the stream's state in the slab's ``aux`` row) becomes the model
input (:meth:`Features.to_inputs`), how the forecast becomes the packed per-row output
(:meth:`Features.pack_outputs`), and which alerts that output holds. The checkpoint's
``NetConfig.inputs`` picks one (:func:`models.runner.make_features`):

* ``raw`` (:class:`RawFeatures`): the values themselves, normalised per stream and feature; the
  forecast is the next vector (the original sensor/speech path, unchanged).
* ``masked`` (:class:`MaskedFeatures`): values where NaN means missing; the model sees the
  imputed normalised values and the mask, missing values are left out of the anomaly score, and
  an alert names the feature (channel) with the largest normalised residual.
* ``ticks`` (:class:`models.ticks.TickFeatures`): ``[price, size, bid, ask]`` trades/quotes,
  featurised per symbol; rule alerts with a ``kind`` (jump, flash crash, ...).

All per-stream state lives in ``aux`` (scorer state first, then the featuriser's own columns), so
slab snapshots and restores carry it like the hidden state.

Packed output of one wave (what :meth:`Features.step` returns): ``[prediction[R], expected[R],
score, anomaly, transition, extra[E]]`` with ``R = raw_size`` (the decoded vector's width).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import ConfigError
from .nets import NetConfig, RecurrentForecaster
from .scoring import Scorer
from .scoring_config import ScoringConfig
from .types import Alert

__all__ = ["Features", "MaskedFeatures", "RawFeatures"]


class Features:
    """Base: the ``raw`` behaviour (values in, next values forecast), no extra state or columns.

    Example:
        >>> f = RawFeatures(NetConfig(input_size=2), ScoringConfig())
        >>> f.raw_size, f.out_width, f.aux_size == f.scorer.size
        (2, 7, True)
    """

    kind = "raw"
    needs_dt = False  # whether step() wants the time since the stream's previous event

    def __init__(self, config: NetConfig, scoring: ScoringConfig) -> None:
        self.config = config
        self.scoring = scoring
        self.scorer = Scorer(scoring, config.input_size)
        self.raw_size = config.input_size
        self.n_extra = 0

    # -- layout ---------------------------------------------------------------------------
    @property
    def aux_size(self) -> int:
        return self.scorer.size

    @property
    def out_width(self) -> int:
        return 2 * self.raw_size + 3 + self.n_extra

    def init_row(self) -> Tensor:
        return self.scorer.init_row()  # [A]

    @property
    def in_place(self) -> bool:
        """Whether :meth:`step` takes ``rows=``: the slab's whole ``aux`` and the wave's rows of it, updated
        where they are (:attr:`models.scoring.Scorer.in_place`) instead of gathered and scattered."""
        return self.scorer.in_place

    def channel_name(self, i: int) -> str:
        names = self.config.channels
        return names[i] if 0 <= i < len(names) else f"value[{i}]"

    # -- host-side checks ------------------------------------------------------------------
    def valid(self, x: np.ndarray) -> np.ndarray:
        """Rows the model accepts (``[B]`` bool); the others are rejected as ``non_finite``."""
        return np.isfinite(x).all(1)  # type: ignore[no-any-return]

    # -- device work -----------------------------------------------------------------------
    def to_inputs(
        self, aux: Tensor, x: Tensor, dt: Tensor | None, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Any]:
        """Featurise and normalise one wave: ``(model_input[b, I], err[b], target[b, O], ctx)``.

        ``target`` is what the forecast of the previous step is compared with (normalised), NaN
        where it is unknown; training fits the forecast at ``t`` to the target at ``t + 1``.
        """
        p = self.scorer.n_phases
        phase = None
        if p:  # the Runner appended the event-time phase columns (Scorer.phases)
            x, phase = x[:, :-p], x[:, -p:]  # [b, F], [b, P]
        x_norm, err = self.scorer.pre(aux, x, phase, rows)  # [b, F], [b]
        return x_norm, err, x_norm, None

    def pack_outputs(
        self, aux: Tensor, err: Tensor, forecast: Tensor, x: Tensor, ctx: Any, rows: Tensor | None = None
    ) -> Tensor:
        """The packed output ``[b, out_width]`` of one wave from the model's ``forecast[b, O]``."""
        return self.scorer.post(aux, err, forecast, rows)  # [b, 2F+3]

    def step_pre(self, aux: Tensor, x: Tensor, dt: Tensor | None, rows: Tensor) -> tuple[Tensor, Any]:
        """:meth:`to_inputs` of a sequence step (:meth:`models.runner.Runner._sequence`, where :attr:`in_place`):
        every row of a micro-batch in one call, a stream's rows in their order (``rows[N]``: their slots in
        the slab's whole ``aux``). Returns the model inputs ``[N, I]`` and what :meth:`step_post` needs.
        Every features kind has it, as none feeds the model its own forecasts."""
        p = self.scorer.n_phases
        phase = None
        if p:  # the Runner appended the event-time phase columns (Scorer.phases)
            x, phase = x[:, :-p], x[:, -p:]  # [N, F], [N, P]
        x_norm, keep = self.scorer.pre_seq(aux, x, rows, phase)  # [N, F], [N, K]
        return x_norm, (x_norm, keep, phase)

    def step_post(self, aux: Tensor, x: Tensor, forecast: Tensor, ctx: Any, rows: Tensor) -> Tensor:
        """:meth:`pack_outputs` of a sequence step, from every row's ``forecast[N, O]``: ``[N, out_width]``, the
        same rows, state and outputs as one wave per event of a stream."""
        x_norm, keep, phase = ctx
        return self.scorer.post_seq(aux, x_norm, keep, forecast, rows, phase)  # [N, 2F+3]

    def step(
        self,
        model: RecurrentForecaster,
        aux: Tensor,
        x: Tensor,
        h: Tensor,
        dt: Tensor | None,
        rows: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Model inputs, one model step, packed outputs; updates ``aux`` in place and returns ``(out, h)``.

        ``rows[b]`` (only where :attr:`in_place`): ``aux`` is the slab's whole aux and these are the wave's rows.
        """
        inp, err, _, ctx = self.to_inputs(aux, x, dt, rows)  # [b, I], [b]
        forecast, h = model.step(inp, h)  # [b, O], [b, L, K, H]
        return self.pack_outputs(aux, err, forecast, x, ctx, rows), h

    # -- alerts ----------------------------------------------------------------------------
    def alerts(
        self, stream_ids: Sequence[str], ts: np.ndarray, x: np.ndarray, packed: np.ndarray, rows: np.ndarray
    ) -> list[Alert]:
        """Alert transitions of ``rows`` (positions in the batch; ``packed[rows]`` their outputs)."""
        r = self.raw_size
        out = []
        for i in rows.tolist():
            p = packed[i]
            out.append(
                Alert(
                    index=i,
                    stream_id=stream_ids[i],
                    ts=float(ts[i]),
                    state="open" if p[2 * r + 2] > 0 else "resolved",
                    score=float(p[2 * r]),
                    expected=p[r : 2 * r].tolist(),
                    actual=x[i].tolist(),
                )
            )
        return out

    def forecast(self, packed: np.ndarray) -> np.ndarray | None:
        """The model's own forecast per row when it differs from ``prediction`` (else None)."""
        return None


class RawFeatures(Features):
    """``raw``: the decoded values are the model input; see :class:`Features`."""


class MaskedFeatures(Features):
    """``masked``: ``F`` values per event, NaN = missing; the model sees ``[values, mask]``.

    Missing values are imputed with the feature's last observation (normalised with the current
    statistics) and masked: they do not update the feature's normaliser and are left out of the
    residual. Each residual is divided by the feature's own running residual size; the alert
    names the feature with the largest such normalised residual.

    Example:
        >>> cfg = NetConfig(input_size=4, output_size=2, inputs="masked", channels=("temp", "rpm"))
        >>> f = MaskedFeatures(cfg, ScoringConfig())
        >>> f.raw_size, f.valid(np.array([[1.0, np.nan], [np.nan, np.nan]], np.float32)).tolist()
        (2, [True, False])
    """

    kind = "masked"

    def __init__(self, config: NetConfig, scoring: ScoringConfig) -> None:
        f = config.out_size
        if config.input_size != 2 * f:
            raise ConfigError(
                f"a masked model takes [values, mask]: input_size must be 2 x output_size, "
                f"got input_size {config.input_size}, output_size {config.output_size}"
            )
        self.config = config
        self.scoring = scoring
        self.scorer = Scorer(scoring, f, masked=True)
        self.raw_size = f
        self.n_extra = 2  # channel, channel_z

    def valid(self, x: np.ndarray) -> np.ndarray:
        return ~np.isinf(x).any(1) & np.isfinite(x).any(1)  # type: ignore[no-any-return]

    # a sequence step: the imputation and the normaliser never read a forecast; the residuals against
    # their per-feature scales, and the channel they pick, wait for the forecasts (Scorer.post_masked_seq)
    def step_pre(self, aux: Tensor, x: Tensor, dt: Tensor | None, rows: Tensor) -> tuple[Tensor, Any]:
        ctx = self.scorer.pre_masked_seq(aux, x, rows)  # [N, F] x_norm, observed, seen; [N, 2F] mv
        return torch.cat(ctx[:2], 1), ctx  # [N, 2F]

    def step_post(self, aux: Tensor, x: Tensor, forecast: Tensor, ctx: Any, rows: Tensor) -> Tensor:
        out, chan, chan_z = self.scorer.post_masked_seq(aux, ctx, forecast, rows)  # [N, 2F+3], [N], [N]
        return torch.cat((out, chan.to(out.dtype).unsqueeze(1), chan_z.unsqueeze(1)), 1)  # [N, 2F+5]

    def to_inputs(
        self, aux: Tensor, x: Tensor, dt: Tensor | None, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Any]:
        x_norm, obs, err, chan, chan_z = self.scorer.pre_masked(aux, x, rows)  # [b, F], [b, F], [b], [b], [b]
        inp = torch.cat((x_norm, obs), 1)  # [b, 2F]
        target = x_norm.masked_fill(obs == 0, float("nan"))  # [b, F]
        return inp, err, target, (chan, chan_z)

    def pack_outputs(
        self, aux: Tensor, err: Tensor, forecast: Tensor, x: Tensor, ctx: Any, rows: Tensor | None = None
    ) -> Tensor:
        chan, chan_z = ctx  # [b], [b]
        out = self.scorer.post(aux, err, forecast, rows)  # [b, 2F+3]
        return torch.cat((out, chan.to(out.dtype).unsqueeze(1), chan_z.unsqueeze(1)), 1)  # [b, 2F+5]

    def alerts(
        self, stream_ids: Sequence[str], ts: np.ndarray, x: np.ndarray, packed: np.ndarray, rows: np.ndarray
    ) -> list[Alert]:
        f = self.raw_size
        out = []
        for i in rows.tolist():
            p = packed[i]
            state = "open" if p[2 * f + 2] > 0 else "resolved"
            c = int(p[2 * f + 3])
            exp, act = p[f : 2 * f].tolist(), x[i].tolist()
            missing = [self.channel_name(k) for k in range(f) if not np.isfinite(x[i, k])]
            gap = f"; missing: {', '.join(missing)}" if missing else ""
            name = self.channel_name(c) if c >= 0 else None
            if state == "open" and name is not None:
                why = (
                    f"{name} drove it: expected {exp[c]:.4g}, got {act[c]:.4g} "
                    f"(residual {p[2 * f + 4]:.1f}x its usual size)"
                )
            else:
                why = "back to normal" if state == "resolved" else "no value observed"
            explanation = f"{state}: {why} (score {p[2 * f]:.3f}){gap}"
            extra = {"channel_index": c, "residual_ratio": round(float(p[2 * f + 4]), 3)} if state == "open" else {}
            out.append(
                Alert(
                    index=i,
                    stream_id=stream_ids[i],
                    ts=float(ts[i]),
                    state=state,
                    score=float(p[2 * f]),
                    expected=exp,
                    actual=act,
                    kind="anomaly",
                    channel=name if state == "open" else None,
                    explanation=explanation,
                    extra=extra,
                )
            )
        return out
