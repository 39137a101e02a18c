"""What goes into and comes out of a model runner: :class:`Batch`, :class:`Results`, :class:`Alert`,
and :class:`StreamRunner`, the one interface every runner offers the Kafka side.

These live below every module that builds or reads them (the featurisers build alerts, the Runner
and the VAD runner build results, replay and evaluation read them), so none of those needs another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from .state import StateSlab

__all__ = ["REJECT_NON_FINITE", "REJECT_OUT_OF_ORDER", "Alert", "Batch", "Results", "StreamRunner"]

# per-row rejection reasons (machine-readable; the Kafka side also uses them as dead-letter reasons)
REJECT_NON_FINITE = "non_finite"
REJECT_OUT_OF_ORDER = "out_of_order"


@dataclass(frozen=True)
class Batch:
    """Events of many streams: ``stream_ids[B]``, event times ``ts[B]`` (epoch s), ``x[B, F]``.

    Example:
        >>> b = Batch.from_rows([("pump-1", 0.0, [1.0]), ("pump-2", 0.0, [3.0])])
        >>> b.x.shape
        (2, 1)
    """

    stream_ids: Sequence[str]
    ts: np.ndarray
    x: np.ndarray

    def __len__(self) -> int:
        return len(self.stream_ids)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, float, Sequence[float]]]) -> Batch:
        ids = [r[0] for r in rows]
        ts = np.fromiter((r[1] for r in rows), np.float64, len(rows))
        x = np.asarray([r[2] for r in rows], dtype=np.float32).reshape(len(rows), -1)
        return cls(ids, ts, x)


@dataclass(frozen=True)
class Alert:
    """An alert transition of one stream (``state`` is ``open`` or ``resolved``).

    ``kind`` says what was detected (``anomaly`` for forecast-residual alerts; ticks: ``jump``,
    ``flash_crash``, ``stale_quote``, ``crossed_quote``, ``volume_burst``; None: the source names
    no kind, as the speech source, whose alert records carry an ``event`` in ``extra`` instead);
    ``channel`` names the feature that drove a multivariate alert; ``explanation`` is a one-line
    human text (None: the output encoder's default "expected vs actual" text); ``extra`` holds more
    fields for the record; ``threshold`` is the threshold this transition crossed when it is not the
    runner's own :attr:`StreamRunner.threshold` (the speech end crosses the lower one), else None.

    Example:
        >>> a = Alert(0, "AAPL", 1.0, "open", 0.8, [0.001], [0.012], kind="jump")
        >>> a.kind, a.channel, a.explanation, a.threshold
        ('jump', None, None, None)
    """

    index: int
    stream_id: str
    ts: float
    state: str
    score: float
    expected: list[float]
    actual: list[float]
    kind: str | None = "anomaly"
    channel: str | None = None
    explanation: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None


@dataclass
class Results:
    """Per-row outputs, aligned with the batch. Rejected rows have ``accepted`` False, a
    ``reason``, NaN predictions and score 0. ``forecast`` is the model's own forecast where it is
    not the next input (ticks: ``[next return, next volatility]``), else None.

    ``prediction`` and ``expected`` are as wide as the stream's values for a forecaster; the speech
    runner predicts one value per frame (its speech probability) and expects none (NaN)."""

    accepted: np.ndarray  # [B] bool
    reason: list[str | None]
    prediction: np.ndarray  # [B, P] forecast of the stream's next input (speech: probability, P = 1)
    expected: np.ndarray  # [B, P] what the model expected for this input
    score: np.ndarray  # [B] anomaly score in [0, 1]
    anomaly: np.ndarray  # [B] bool
    transition: np.ndarray  # [B] int8: +1 opened, -1 resolved (any alert kind)
    alerts: list[Alert] = field(default_factory=list)
    forecast: np.ndarray | None = None  # [B, O]

    @property
    def n_rejected(self) -> int:
        return int((~self.accepted).sum())


class StreamRunner(Protocol):
    """What a source's Kafka-side pipeline uses of a runner: the forecasting
    :class:`~models.runner.Runner` and the speech :class:`~models.silero.VadRunner` both offer it.

    ``process`` advances each event's stream by one step, in batch order per stream, rejecting rows
    with a reason (``Results.reason``) instead of raising; ``slab`` holds every stream's state (the
    pipeline parks, snapshots and restores streams through it); ``n_features`` is the width of an
    event's decoded vector (``Batch.x``); ``threshold`` is the score at which an alert opens;
    ``fingerprint`` names what builds the state (the weights and the configuration that shapes it,
    :mod:`models.fingerprint`): a snapshot of another fingerprint was built by another model.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def slab(self) -> StateSlab: ...

    @property
    def n_features(self) -> int: ...

    @property
    def threshold(self) -> float: ...

    @property
    def fingerprint(self) -> str: ...

    def process(self, batch: Batch) -> Results: ...
