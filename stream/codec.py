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

Speed: records are parsed by msgspec into a typed struct per source and checked on arrays (the fast
path); a record it cannot vouch for takes the careful per-record path, which alone decides every
rejection (see "the fast path" below). :func:`encode_predictions` encodes a batch of predictions.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import numpy as np
import orjson

__all__ = [
    "REASONS",
    "Decoded",
    "RecordLike",
    "decode_batch",
    "encode_alert",
    "encode_dead",
    "encode_prediction",
    "encode_predictions",
]

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


def _float(v: int | float, name: str) -> float:
    # a JSON integer literal beyond float range (Python's json parses it exactly) is bad input,
    # not an internal error that would dead-letter the whole micro-batch
    try:
        return float(v)
    except OverflowError:
        raise _Bad("non_finite", f"field {name!r} holds a number too large for a float") from None


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
    f = _float(v, name)
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
    out = [math.nan if e is None else _float(e, name) for e in v]
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


def _iso_time(v: str) -> float:
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise _Bad("bad_shape", f"field 'ts' is not ISO-8601 nor epoch seconds: {v[:40]!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _event_time(obj: dict[str, Any]) -> float:
    if "ts" not in obj:
        raise _Bad("missing_field", "field 'ts' is missing")
    v = obj["ts"]
    if isinstance(v, str):
        return _iso_time(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad("bad_shape", f"field 'ts' must be epoch seconds or ISO-8601, got {type(v).__name__}")
    t = _float(v, "ts")
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


def _decode_record(
    rec: RecordLike,
    features: Callable[[dict[str, Any], int], Sequence[float] | np.ndarray],
    n_features: int,
    now: float,
    horizon: float,
    max_payload_bytes: int,
) -> tuple[str, float, Sequence[float] | np.ndarray]:
    """One record on the careful path: (stream, event time, feature row), or :class:`_Bad`."""
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
    return stream, ts, features(obj, n_features)


def _decode_careful(
    source: str,
    records: Sequence[RecordLike],
    *,
    n_features: int,
    now: float,
    max_future_s: float = 300.0,
    max_payload_bytes: int = 65536,
) -> Decoded:
    """Every record on the careful path (the reference the fast path must equal; tests and bench)."""
    errors: list[tuple[int, str, str]] = []
    rows = _careful_rows(
        source, records, range(len(records)), errors, n_features, now, now + max_future_s, max_payload_bytes
    )
    return _drop_overflow(*rows, errors)


def _careful_rows(
    source: str,
    records: Sequence[RecordLike],
    positions: Iterable[int],
    errors: list[tuple[int, str, str]],
    n_features: int,
    now: float,
    horizon: float,
    max_payload_bytes: int,
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """The careful per-record path over ``positions`` (ascending): the accepted rows (positions, ids,
    event times, float32 values); each rejection goes to ``errors`` in input order."""
    features = _FEATURES[source]
    index: list[int] = []
    ids: list[str] = []
    tss: list[float] = []
    rows: list[Sequence[float] | np.ndarray] = []
    for i in positions:
        try:
            stream, ts, x = _decode_record(records[i], features, n_features, now, horizon, max_payload_bytes)
        except _Bad as bad:
            errors.append((i, bad.reason, bad.message))
            continue
        index.append(i)
        ids.append(stream)
        tss.append(ts)
        rows.append(x)
    return np.asarray(index, np.int64), ids, np.asarray(tss, np.float64), _rows_f32(rows, n_features)


def _rows_f32(rows: Sequence[Sequence[float] | np.ndarray] | np.ndarray, n_features: int) -> np.ndarray:
    with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf here (see _drop_overflow)
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), n_features)  # [n, F]


def _drop_overflow(
    index: np.ndarray, ids: list[str], ts: np.ndarray, x: np.ndarray, errors: list[tuple[int, str, str]]
) -> Decoded:
    """The result, after moving rows whose float32 values overflowed to the errors (after the others)."""
    # float32 overflow (e.g. 1e39) is still a non-finite input for the model (NaN means missing)
    if len(x) and np.isinf(x).any():
        overflow = np.isinf(x).any(1)  # [n]
        for j in np.flatnonzero(overflow).tolist():
            errors.append((int(index[j]), "non_finite", "a value overflows float32"))
        keep = np.flatnonzero(~overflow)
        index = index[keep]
        ids = [ids[j] for j in keep.tolist()]
        ts = ts[keep]
        x = x[keep]  # [n', F]
    return Decoded(index, ids, ts, x, errors)


# -- the fast path ------------------------------------------------------------------------------
# msgspec decodes and type-checks a record in C into a typed Struct per source (unknown fields are
# skipped, like the careful path ignores them), the checks that need numbers (finite, in range, not
# in the future, not all missing) run on whole arrays. A record the fast path has any doubt about
# goes the careful path, which alone decides every rejection: reasons and messages stay identical.
# The fast path never rejects, and it accepts only what the careful path accepts with the same values
# (tests/test_stream_codec.py compares both on valid and invalid records of every source).


class _SensorMsg(msgspec.Struct, gc=False):
    stream: str
    ts: float | str
    values: list[float | None]


class _SpeechMsg(msgspec.Struct, gc=False):
    stream: str
    ts: float | str
    features: list[float]


class _TickMsg(msgspec.Struct, gc=False):
    stream: str
    ts: float | str
    price: float
    size: float
    bid: float | None = None
    ask: float | None = None


class _AudioMsg(msgspec.Struct, gc=False):
    stream: str
    ts: float | str
    # msgspec decodes base64 about 3x faster than base64.b64decode; it accepts a subset of what
    # b64decode(validate=True) accepts (not e.g. a surplus "=" after full groups), with the same bytes
    pcm: bytes


def _lists_fast(vals: list[list[float | None]], n: int, *, missing: bool) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-length number lists (``None`` -> NaN) as [m, n] float64, and which rows are certainly good."""
    m = len(vals)
    ok = [len(v) == n for v in vals]
    if not all(ok):
        pad: list[float | None] = [math.nan] * n
        vals = [v if g else pad for v, g in zip(vals, ok)]
    try:  # flat is about 2x faster than numpy's nested-list conversion
        x = np.fromiter(itertools.chain.from_iterable(vals), np.float64, m * n).reshape(m, n)  # [m, n]
    except TypeError:  # a null (missing value): the nested-list conversion makes it NaN
        x = np.array(vals, dtype=np.float64).reshape(m, n)
    good = np.array(ok, dtype=bool) & ~np.isinf(x).any(1)  # msgspec yields no inf; kept as a guard
    if missing and n:
        good &= ~np.isnan(x).all(1)  # all_missing
    return x, good


def _sensor_fast(msgs: list[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    return _lists_fast([m.values for m in msgs], n, missing=True)


def _speech_fast(msgs: list[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    return _lists_fast([m.features for m in msgs], n, missing=False)


def _tick_fast(msgs: list[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    m = len(msgs)
    if n not in (2, 4):  # wrong_length: the careful path says so
        return np.zeros((m, n)), np.zeros(m, bool)
    price = np.array([t.price for t in msgs], np.float64)  # [m]
    size = np.array([t.size for t in msgs], np.float64)
    bid = np.array([t.bid for t in msgs], np.float64)  # None -> NaN
    ask = np.array([t.ask for t in msgs], np.float64)
    good = np.isfinite(price) & np.isfinite(size) & ~np.isinf(bid) & ~np.isinf(ask) & (price > 0.0) & (size >= 0.0)
    if n == 4:
        return np.stack([price, size, bid, ask], 1), good  # [m, 4]
    # math.log per row, as on the careful path (np.log may differ in the last bit)
    lp = [math.log(p) if g else 0.0 for p, g in zip(price.tolist(), good.tolist())]
    ls = [math.log1p(s) if g else 0.0 for s, g in zip(size.tolist(), good.tolist())]
    return np.array([lp, ls], np.float64).T, good  # [m, 2]


def _audio_fast(msgs: list[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    m = len(msgs)
    raws = [msg.pcm for msg in msgs]  # decoded from base64 by msgspec
    ok = [len(raw) == 2 * n for raw in raws]
    if not all(ok):
        blank = bytes(2 * n)
        raws = [raw if g else blank for raw, g in zip(raws, ok)]
    pcm = np.frombuffer(b"".join(raws), "<i2").reshape(m, n)  # [m, n]
    return pcm.astype(np.float32) / np.float32(32768.0), np.array(ok, dtype=bool)


@dataclass(frozen=True)
class _Fast:
    """A source's fast path: its msgspec decoder and its vectorised features ([m, F] rows, good rows)."""

    decode: Callable[[bytes], Any]
    features: Callable[[list[Any], int], tuple[np.ndarray, np.ndarray]]


_FAST: dict[str, _Fast] = {
    "sensors": _Fast(msgspec.json.Decoder(_SensorMsg).decode, _sensor_fast),
    "machines": _Fast(msgspec.json.Decoder(_SensorMsg).decode, _sensor_fast),
    "speech": _Fast(msgspec.json.Decoder(_SpeechMsg).decode, _speech_fast),
    "ticks": _Fast(msgspec.json.Decoder(_TickMsg).decode, _tick_fast),
    "audio": _Fast(msgspec.json.Decoder(_AudioMsg).decode, _audio_fast),
}

# Inputs where msgspec and the careful path's JSON parsers could disagree go the careful path:
# msgspec skips unknown fields without checking their UTF-8 (orjson and json reject invalid UTF-8),
# and its nesting limit differs from orjson's (1024) and json's (the recursion limit). A value of
# at most _SHALLOW_BYTES cannot nest deeper than half that; a longer one is counted.
_SHALLOW_BYTES = 256
_MAX_BRACKETS = 64


def _plain(value: bytes) -> bool:
    """Whether msgspec surely parses ``value`` as orjson does (valid UTF-8, shallow)."""
    if not value.isascii():
        try:
            value.decode()
        except UnicodeDecodeError:
            return False
    return len(value) <= _SHALLOW_BYTES or value.count(b"[") + value.count(b"{") <= _MAX_BRACKETS


def _scan(
    decode: Callable[[bytes], Any], records: Sequence[RecordLike], max_payload_bytes: int
) -> tuple[list[int], list[str], list[float], list[Any], list[int]]:
    """Parse what msgspec can: (positions, stream ids, event times, messages) and the others' positions."""
    pos: list[int] = []
    ids: list[str] = []
    tss: list[float] = []
    msgs: list[Any] = []
    slow: list[int] = []
    short = min(_SHALLOW_BYTES, max_payload_bytes)
    for i, rec in enumerate(records):
        value = rec.value
        if value is None:
            slow.append(i)
            continue
        # the usual record is short ASCII; the others are checked in full
        if not (len(value) <= short and value.isascii()) and (len(value) > max_payload_bytes or not _plain(value)):
            slow.append(i)
            continue
        try:
            msg = decode(value)
            stream = msg.stream
            key = rec.key
            # equal bytes <=> the key is UTF-8 and decodes to the stream id
            if not stream or (key is not None and key != stream.encode()):
                slow.append(i)
                continue
            ts = msg.ts
            if ts.__class__ is str:
                ts = _iso_time(ts)
        except Exception:  # msgspec's errors, a bad ISO time (_Bad), a stream id it cannot encode
            slow.append(i)
            continue
        pos.append(i)
        ids.append(stream)
        tss.append(ts)
        msgs.append(msg)
    return pos, ids, tss, msgs, slow


def decode_batch(
    source: str,
    records: Sequence[RecordLike],
    *,
    n_features: int,
    now: float,
    max_future_s: float = 300.0,
    max_payload_bytes: int = 65536,
) -> Decoded:
    """Decode a micro-batch of one source; see the module docstring for the contract.

    Records go the fast path (msgspec, checks on arrays) when it can vouch for them, the others
    the careful per-record path; the result is the same as the careful path's for every record.
    """
    fast = _FAST.get(source)
    if fast is None:
        return _decode_careful(
            source,
            records,
            n_features=n_features,
            now=now,
            max_future_s=max_future_s,
            max_payload_bytes=max_payload_bytes,
        )
    horizon = now + max_future_s
    pos, ids, tss, msgs, slow = _scan(fast.decode, records, max_payload_bytes)
    ts = np.asarray(tss, np.float64)  # [m]
    x, good = fast.features(msgs, n_features)  # [m, F], [m]
    good &= np.isfinite(ts) & (ts <= horizon)
    index = np.asarray(pos, np.int64)
    if not good.all():
        bad = np.flatnonzero(~good).tolist()
        slow = sorted(slow + [pos[j] for j in bad])
        keep = np.flatnonzero(good)
        index, ids, ts, x = index[keep], [ids[j] for j in keep.tolist()], ts[keep], x[keep]
    x32 = _rows_f32(x, n_features)
    errors: list[tuple[int, str, str]] = []
    if slow:
        index, ids, ts, x32 = _merge_careful(
            source, records, slow, (index, ids, ts, x32), errors, n_features, now, horizon, max_payload_bytes
        )
    return _drop_overflow(index, ids, ts, x32, errors)


def _merge_careful(
    source: str,
    records: Sequence[RecordLike],
    slow: list[int],
    good: tuple[np.ndarray, list[str], np.ndarray, np.ndarray],
    errors: list[tuple[int, str, str]],
    n_features: int,
    now: float,
    horizon: float,
    max_payload_bytes: int,
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Run the ``slow`` positions (ascending) on the careful path: their errors go to ``errors`` in
    input order, records it accepts join the fast path's ``good`` rows in input order."""
    index, ids, tss, x = _careful_rows(source, records, slow, errors, n_features, now, horizon, max_payload_bytes)
    if not len(index):
        return good
    f_index, f_ids, f_ts, f_x = good
    all_index = np.concatenate([f_index, index])
    order = np.argsort(all_index, kind="stable")  # [n]
    all_ids = f_ids + ids
    all_ts = np.concatenate([f_ts, tss])
    all_x = np.concatenate([f_x, x])
    return all_index[order], [all_ids[j] for j in order.tolist()], all_ts[order], all_x[order]


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
