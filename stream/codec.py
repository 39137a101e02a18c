"""Bulk JSON decoding of input records and encoding of output records.

Input contract (Kafka key = stream id, UTF-8; value = JSON):

- ``sensor-readings`` (source ``sensors``) and ``machine-readings`` (source ``machines``):
  ``{"stream": "pump-7", "ts": 1718000000.5, "values": [float|null, ...]}``; ``null`` is a
  missing value (NaN; a masked model handles it, another model rejects the row as
  ``non_finite``); all values missing is ``all_missing``
- ``speech-features``: ``{"stream": "call-42", "ts": "2024-06-10T06:13:20Z", "features": [float, ...]}``
- ``market-ticks``: ``{"stream": "AAPL", "ts": ..., "price": float, "size": float,
  "bid": float|null, "ask": float|null}``
  -> ``[price, size, bid, ask]`` (missing bid/ask NaN) for a ticks model (4 inputs, see
  :mod:`models.ticks`), or ``[log(price), log1p(size)]`` for a plain 2-input forecaster
- ``speech-audio`` (source ``audio``): ``{"stream": "mic-3", "ts": ..., "pcm": "<base64>"}`` where
  ``pcm`` is 512 little-endian int16 samples of 16 kHz mono audio (1024 bytes)
  -> ``x[512]`` float32 samples / 32768 in [-1, 1); undecodable base64 is ``bad_base64``, another
  byte count ``wrong_length``

``ts`` is the event time: epoch seconds (number) or ISO-8601 (naive means UTC).

Bad input is data: :func:`decode_batch` never raises for a record; it returns each bad record's
position with a machine-readable reason (see :data:`REASONS`) and a human-readable message.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import orjson

__all__ = ["REASONS", "Decoded", "RecordLike", "decode_batch", "encode_alert", "encode_dead", "encode_prediction"]

# machine-readable dead-letter reasons (the Runner adds non_finite and out_of_order)
REASONS = (
    "not_json",
    "bad_shape",
    "missing_field",
    "wrong_length",
    "non_finite",
    "out_of_range",
    "key_mismatch",
    "future_timestamp",
    "too_large",
    "out_of_order",
    "bad_base64",
    "all_missing",
)


class RecordLike(Protocol):
    """What the codec needs of a Kafka record (aiokafka's ``ConsumerRecord`` fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class _Bad(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason, self.message = reason, message


@dataclass
class Decoded:
    """Good records as arrays (positions ``index`` into the input list) plus bad ones as errors.

    Example:
        >>> from types import SimpleNamespace as R
        >>> recs = [R(topic="t", partition=0, offset=0, key=b"a", value=b'{"stream":"a","ts":1,"values":[2]}',
        ...           timestamp=0), R(topic="t", partition=0, offset=1, key=b"a", value=b"{", timestamp=0)]
        >>> d = decode_batch("sensors", recs, n_features=1, now=10.0)
        >>> d.index.tolist(), d.x.tolist(), [e[1] for e in d.errors]
        ([0], [[2.0]], ['not_json'])
    """

    index: np.ndarray  # [n] int64 positions of good records
    stream_ids: list[str]
    ts: np.ndarray  # [n] float64 epoch seconds
    x: np.ndarray  # [n, F] float32
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (position, reason, message)


def _number(obj: dict[str, Any], name: str, *, nullable: bool = False) -> float | None:
    if name not in obj:
        if nullable:
            return None
        raise _Bad("missing_field", f"field {name!r} is missing")
    v = obj[name]
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad("bad_shape", f"field {name!r} must be a number, got {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f):
        raise _Bad("non_finite", f"field {name!r} is {f}")
    return f


def _vector(obj: dict[str, Any], name: str, n: int, *, missing: bool = False) -> list[float]:
    if name not in obj:
        raise _Bad("missing_field", f"field {name!r} is missing")
    v = obj[name]
    if not isinstance(v, list):
        raise _Bad("bad_shape", f"field {name!r} must be a list of numbers, got {type(v).__name__}")
    if len(v) != n:
        raise _Bad("wrong_length", f"field {name!r} has {len(v)} values; this model takes {n}")
    for e in v:
        if (isinstance(e, bool) or not isinstance(e, int | float)) and not (missing and e is None):
            raise _Bad("bad_shape", f"field {name!r} must hold numbers only, found {type(e).__name__}")
    out = [math.nan if e is None else float(e) for e in v]
    if not all(math.isfinite(e) for e, raw in zip(out, v) if raw is not None):
        raise _Bad("non_finite", f"field {name!r} holds NaN or infinity")
    if n and all(e is None for e in v):
        raise _Bad("all_missing", f"field {name!r} has no value (every one is null)")
    return out


def _sensor_features(obj: dict[str, Any], n: int) -> list[float]:
    return _vector(obj, "values", n, missing=True)


def _speech_features(obj: dict[str, Any], n: int) -> list[float]:
    return _vector(obj, "features", n)


def _tick_features(obj: dict[str, Any], n: int) -> list[float]:
    price = _number(obj, "price")
    size = _number(obj, "size")
    bid = _number(obj, "bid", nullable=True)
    ask = _number(obj, "ask", nullable=True)
    assert price is not None and size is not None
    if price <= 0.0:
        raise _Bad("out_of_range", f"price must be > 0, got {price}")
    if size < 0.0:
        raise _Bad("out_of_range", f"size must be >= 0, got {size}")
    if n == 4:  # a ticks model featurises per symbol (models.ticks)
        return [price, size, math.nan if bid is None else bid, math.nan if ask is None else ask]
    if n != 2:
        raise _Bad(
            "wrong_length", f"ticks give [price, size, bid, ask] or [log(price), log1p(size)]; the model takes {n}"
        )
    return [math.log(price), math.log1p(size)]


def _audio_samples(obj: dict[str, Any], n: int) -> np.ndarray:
    if "pcm" not in obj:
        raise _Bad("missing_field", "field 'pcm' is missing")
    v = obj["pcm"]
    if not isinstance(v, str):
        raise _Bad("bad_shape", f"field 'pcm' must be a base64 string, got {type(v).__name__}")
    try:
        raw = base64.b64decode(v, validate=True)
    except ValueError:
        raise _Bad("bad_base64", "field 'pcm' is not valid base64") from None
    if len(raw) != 2 * n:
        raise _Bad(
            "wrong_length",
            f"field 'pcm' holds {len(raw)} bytes; the model takes {n} int16 little-endian samples ({2 * n} bytes)",
        )
    return np.frombuffer(raw, "<i2").astype(np.float32) / np.float32(32768.0)  # [n]


_FEATURES: dict[str, Callable[[dict[str, Any], int], Sequence[float] | np.ndarray]] = {
    "sensors": _sensor_features,
    "machines": _sensor_features,
    "speech": _speech_features,
    "ticks": _tick_features,
    "audio": _audio_samples,
}


def _event_time(obj: dict[str, Any]) -> float:
    if "ts" not in obj:
        raise _Bad("missing_field", "field 'ts' is missing")
    v = obj["ts"]
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v)
        except ValueError:
            raise _Bad("bad_shape", f"field 'ts' is not ISO-8601 nor epoch seconds: {v[:40]!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad("bad_shape", f"field 'ts' must be epoch seconds or ISO-8601, got {type(v).__name__}")
    t = float(v)
    if not math.isfinite(t):
        raise _Bad("non_finite", f"field 'ts' is {t}")
    return t


def _loads(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses NaN/Infinity literals; Python's json writes them by default. Parse them
    # (error path only) so they are reported as non_finite rather than not_json.
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        raise _Bad("not_json", "value is not valid UTF-8 JSON") from None


def decode_batch(
    source: str,
    records: Sequence[RecordLike],
    *,
    n_features: int,
    now: float,
    max_future_s: float = 300.0,
    max_payload_bytes: int = 65536,
) -> Decoded:
    """Decode a micro-batch of one source; see the module docstring for the contract."""
    features = _FEATURES[source]
    index: list[int] = []
    ids: list[str] = []
    tss: list[float] = []
    rows: list[Sequence[float] | np.ndarray] = []
    errors: list[tuple[int, str, str]] = []
    horizon = now + max_future_s
    for i, rec in enumerate(records):
        try:
            value = rec.value
            if value is None:
                raise _Bad("not_json", "value is empty (tombstone)")
            if len(value) > max_payload_bytes:
                raise _Bad("too_large", f"value has {len(value)} bytes; the limit is {max_payload_bytes}")
            obj = _loads(value)
            if not isinstance(obj, dict):
                raise _Bad("bad_shape", f"value must be a JSON object, got {type(obj).__name__}")
            if "stream" not in obj:
                raise _Bad("missing_field", "field 'stream' is missing")
            stream = obj["stream"]
            if not isinstance(stream, str) or not stream:
                raise _Bad("bad_shape", "field 'stream' must be a non-empty string")
            if rec.key is not None:
                try:
                    key = rec.key.decode()
                except UnicodeDecodeError:
                    raise _Bad("key_mismatch", "Kafka key is not UTF-8") from None
                if key != stream:
                    raise _Bad("key_mismatch", f"Kafka key {key[:64]!r} differs from payload stream {stream[:64]!r}")
            ts = _event_time(obj)
            if ts > horizon:
                raise _Bad("future_timestamp", f"event time {ts:.3f} is {ts - now:.0f} s in the future")
            x = features(obj, n_features)
        except _Bad as bad:
            errors.append((i, bad.reason, bad.message))
            continue
        index.append(i)
        ids.append(stream)
        tss.append(ts)
        rows.append(x)
    with np.errstate(over="ignore"):
        x_arr = np.asarray(rows, dtype=np.float32).reshape(len(rows), n_features)  # [n, F]
    # float32 overflow (e.g. 1e39) is still a non-finite input for the model (NaN means missing)
    if len(rows) and np.isinf(x_arr).any():
        overflow = np.isinf(x_arr).any(1)  # [n]
        for j in np.flatnonzero(overflow):
            errors.append((index[j], "non_finite", "a value overflows float32"))
        keep = np.flatnonzero(~overflow)
        index = [index[j] for j in keep]
        ids = [ids[j] for j in keep]
        tss = [tss[j] for j in keep]
        x_arr = x_arr[keep]  # [n', F]
    return Decoded(np.asarray(index, dtype=np.int64), ids, np.asarray(tss, dtype=np.float64), x_arr, errors)


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
    if explanation is None:
        explanation = f"{state}: expected [{exp}], got [{act}] (score {score:.3f}, threshold {threshold:.3f})"
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
            **(extra or {}),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def encode_dead(rec: RecordLike, *, source: str, reason: str, message: str) -> bytes:
    """One ``dead-letter`` record carrying the original key and value (base64)."""
    return orjson.dumps(
        {
            "id": event_id(rec),
            "source": source,
            "reason": reason,
            "message": message,
            "input": {**_input_ref(rec), "timestamp_ms": rec.timestamp},
            "key_b64": base64.b64encode(rec.key).decode() if rec.key is not None else None,
            "value_b64": base64.b64encode(rec.value).decode() if rec.value is not None else None,
        }
    )
