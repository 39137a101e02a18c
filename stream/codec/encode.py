"""Encoding of output records: predictions (one by one or a whole batch from arrays), alerts, dead letters.

Every output carries ``id`` = ``topic:partition:offset`` of the input record it came from, so a
consumer can drop the duplicates an at-least-once redelivery makes.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from .decode import RecordLike

__all__ = ["encode_alert", "encode_dead", "encode_prediction", "encode_predictions", "event_id", "severity"]


def _input_ref(rec: RecordLike) -> dict[str, Any]:
    return {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}


def event_id(rec: RecordLike) -> str:
    """The stable id ``topic:partition:offset`` of the input record an output came from."""
    return f"{rec.topic}:{rec.partition}:{rec.offset}"


def encode_prediction(
    rec: RecordLike,
    *,
    stream: str,
    source: str,
    ts: float,
    model: str,
    prediction: list[float],
    score: float,
    anomaly: bool,
) -> bytes:
    """One ``predictions`` record."""
    return orjson.dumps(
        {
            "id": event_id(rec),
            "stream": stream,
            "source": source,
            "ts": ts,
            "model": model,
            "prediction": prediction,
            "score": score,
            "anomaly": anomaly,
            "input": _input_ref(rec),
        }
    )


# One predictions record with the JSON text of its values filled in: the bytes orjson writes for
# encode_prediction's dict (the keys in the same order, no whitespace); strings go in without
# their quotes, prediction vectors without their brackets.
_PREDICTION = (
    b'{"id":"%s:%s:%s","stream":"%s","source":%s,"ts":%s,"model":%s,"prediction":[%s],"score":%s,'
    b'"anomaly":%s,"input":{"topic":"%s","partition":%s,"offset":%s}}'
)
# what orjson escapes in a string besides the quote (control characters, backslash) or refuses (lone surrogates)
_ESCAPED = re.compile(r"[\x00-\x1f\\\ud800-\udfff]")


def _dumps_column(values: Sequence[Any] | np.ndarray, ndim: int) -> bytes:
    """orjson's text of a column. A numeric numpy array of ``ndim`` dimensions is written as it is,
    with no ``tolist()`` (a Python object per item): floats widened to float64 first, so the text is
    that of the Python floats ``tolist()`` gives (float32 written as float32 would be shorter)."""
    if isinstance(values, np.ndarray):
        if values.ndim == ndim and values.dtype.kind in "biuf":
            a = np.ascontiguousarray(values, np.float64 if values.dtype.kind == "f" else None)
            try:
                return orjson.dumps(a, option=orjson.OPT_SERIALIZE_NUMPY)
            except orjson.JSONEncodeError:  # what orjson does not take as it is (e.g. big-endian)
                pass
        values = values.tolist()
    return orjson.dumps(values if isinstance(values, list) else list(values))


def _json_items(values: Sequence[Any] | np.ndarray) -> list[bytes]:
    """The JSON text of each item of a list, as orjson writes it anywhere; an item whose text holds a
    comma (a string, a vector) gives more than ``len(values)`` pieces."""
    return _dumps_column(values, 1)[1:-1].split(b",")


def _json_strings(values: list[Any]) -> list[bytes] | None:
    """The JSON text of each string of a list without its quotes, as orjson writes it (None: not all str)."""
    try:
        joined = '"'.join(values)
    except TypeError:
        return None
    if joined.count('"') == len(values) - 1 and not _ESCAPED.search(joined):
        return joined.encode().split(b'"')  # nothing to escape: the UTF-8 bytes are the JSON text
    return [orjson.dumps(v)[1:-1] for v in values]


def _json_vectors(values: Sequence[Any] | np.ndarray) -> list[bytes]:
    """The JSON text of each number list of a list (or row of a 2-d array) without its brackets;
    anything else (not a list, a list in a list) gives another number of pieces or loses the outer
    brackets."""
    body = _dumps_column(values, 2)
    return body[2:-2].split(b"],[") if body[:2] == b"[[" and body[-2:] == b"]]" else []


def encode_predictions(
    recs: Sequence[RecordLike],
    *,
    streams: Sequence[str],
    source: str,
    ts: Sequence[float] | np.ndarray,
    model: str,
    predictions: Sequence[list[float]] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    anomalies: Sequence[bool] | np.ndarray,
) -> list[bytes]:
    """The ``predictions`` records of many events: the same bytes as :func:`encode_prediction` per event
    (given each array's ``tolist()`` values).

    orjson serialises each column once (one call per column, not a dict and a call per event:
    about 2x cheaper per event, and orjson's 1 KiB buffer per call stays off the C heap), and
    each record is the template :data:`_PREDICTION` filled with its values' JSON text. The
    numeric columns may be numpy arrays (``ts[n]``, ``predictions[n, F]``, ``scores[n]``,
    ``anomalies[n]``): orjson reads them without a Python object per value. Columns the template
    cannot hold (values of other types) go the per-event encoder.
    """
    n = len(recs)
    if not n:
        return []
    cols = [
        _json_strings([r.topic for r in recs]),
        _json_items([r.partition for r in recs]),
        _json_items([r.offset for r in recs]),
        _json_strings(list(streams)),
        _json_items(ts),
        _json_vectors(predictions),
        _json_items(scores),
        _json_items(anomalies),
    ]
    if any(c is None or len(c) != n for c in cols):
        py = [v.tolist() if isinstance(v, np.ndarray) else v for v in (ts, predictions, scores, anomalies)]
        return [
            encode_prediction(r, stream=s, source=source, ts=t, model=model, prediction=p, score=c, anomaly=a)
            for r, s, t, p, c, a in zip(recs, streams, *py)
        ]
    src, mod = orjson.dumps(source), orjson.dumps(model)
    tpl = _PREDICTION
    return [
        tpl % (topic, part, off, stream, src, t, mod, pred, score, anomaly, topic, part, off)
        for topic, part, off, stream, t, pred, score, anomaly in zip(*cols)
    ]


def severity(score: float) -> str:
    return "critical" if score >= 0.9 else "major" if score >= 0.7 else "minor"


def encode_alert(
    rec: RecordLike,
    *,
    stream: str,
    source: str,
    ts: float,
    model: str,
    state: str,
    score: float,
    threshold: float,
    expected: list[float],
    actual: list[float],
    explanation: str | None = None,
    extra: dict[str, Any] | None = None,
    kind: str | None = None,
    channel: str | None = None,
) -> bytes:
    """One ``anomaly-alerts`` record (an alert transition: ``open`` or ``resolved``).

    ``explanation`` replaces the default text; ``kind`` (what was detected, e.g. ``jump``) and
    ``channel`` (the feature that drove a multivariate alert) are added when given, as are the
    source-specific ``extra`` fields (e.g. the speech ``event`` and ``boundary_ts`` of ``audio``).
    Missing actual values (NaN) are written as ``null``.
    """
    exp = ", ".join(f"{v:.4g}" for v in expected)
    act = ", ".join(f"{v:.4g}" for v in actual)
    # only where `expected` is a forecast of `actual` (rule alerts such as the ticks' jumps carry limits there)
    forecast_based = kind in (None, "anomaly")
    direction, gap = _direction(expected, actual, (extra or {}).get("channel_index")) if forecast_based else (None, 0.0)
    if explanation is None:
        how = f", {abs(gap):.4g} {direction} the forecast" if direction else ""
        explanation = f"{state}: expected [{exp}], got [{act}]{how} (score {score:.3f}, threshold {threshold:.3f})"
    return orjson.dumps(
        {
            "id": event_id(rec),
            "stream": stream,
            "source": source,
            "ts": ts,
            "model": model,
            "state": state,
            "score": score,
            "threshold": threshold,
            "severity": severity(score),
            "expected": expected,
            "actual": actual,
            "explanation": explanation,
            "input": _input_ref(rec),
            **({"kind": kind} if kind is not None else {}),
            **({"channel": channel} if channel is not None else {}),
            **({"direction": direction} if direction else {}),
            **(extra or {}),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def _direction(expected: Sequence[float], actual: Sequence[float], channel: Any) -> tuple[str | None, float]:
    """Whether the value came in ``above`` or ``below`` its forecast, and by how much: for one
    value, or for the ``channel`` that drove a multivariate alert; None where that is not defined
    (several features and no channel: they need not share units; other lengths; NaN; no gap)."""
    if len(expected) != len(actual) or not expected:
        return None, 0.0
    if len(expected) == 1:
        k = 0
    elif isinstance(channel, int) and 0 <= channel < len(expected):
        k = channel
    else:
        return None, 0.0
    gap = actual[k] - expected[k]
    if not math.isfinite(gap) or gap == 0.0:
        return None, 0.0
    return ("above" if gap > 0 else "below"), gap


# the most bytes of a rejected key or value a dead letter carries: base64 makes them 4/3 larger, and a
# dead letter over the broker's message.max.bytes (1 MiB by default) would fail the whole batch's send
DEAD_EMBED_MAX = 256 * 1024


def _b64_head(raw: bytes | None) -> str | None:
    return base64.b64encode(raw[:DEAD_EMBED_MAX]).decode() if raw is not None else None


def encode_dead(rec: RecordLike, *, source: str, reason: str, message: str) -> bytes:
    """One ``dead-letter`` record carrying the original key and value (base64); of a value (or key) over
    :data:`DEAD_EMBED_MAX` bytes only its first ``DEAD_EMBED_MAX`` bytes, with ``value_bytes`` (its size)
    and ``value_truncated: true`` (the whole record stays at ``input``'s topic, partition and offset)."""
    out: dict[str, object] = {
        "id": event_id(rec),
        "source": source,
        "reason": reason,
        "message": message,
        "input": {**_input_ref(rec), "timestamp_ms": rec.timestamp},
        "key_b64": _b64_head(rec.key),
        "value_b64": _b64_head(rec.value),
    }
    for name, raw in (("key", rec.key), ("value", rec.value)):
        if raw is not None and len(raw) > DEAD_EMBED_MAX:
            out[f"{name}_bytes"] = len(raw)
            out[f"{name}_truncated"] = True
    return orjson.dumps(out)
