"""Bulk decoding of input records: JSON values into arrays, or a dead-letter reason per record.

Every source's wire format (its msgspec schema, the features of one careful record, the vectorised
features of many) lives in its own file in ``stream/sources/``; this module is the machinery they
share. Common to every source: Kafka key = stream id (UTF-8); value = a JSON object with ``"stream"``
(the same id) and ``"ts"``, the event time: epoch seconds (number) or ISO-8601 (naive means UTC).

Bad input is data: :func:`decode_batch` never raises for a record; it returns each bad record's
position with a machine-readable reason (see :data:`REASONS`) and a human-readable message.

Speed: records are parsed by msgspec into the source's typed struct and checked on arrays (the fast
path); a record it cannot vouch for takes the careful per-record path, which alone decides every
rejection (see "the fast path" below).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import orjson

__all__ = [
    "REASONS",
    "BadInput",
    "Decoded",
    "RecordLike",
    "WireFormat",
    "decode_batch",
    "lists_fast",
    "number",
    "vector",
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


class BadInput(Exception):
    """A record's value breaks its source's contract: ``reason`` (one of :data:`REASONS`) and ``message``."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason, self.message = reason, message


CarefulFeatures = Callable[[dict[str, Any], int], Sequence[float] | np.ndarray]
FastFeatures = Callable[[list[Any], int], tuple[np.ndarray, np.ndarray]]


class WireFormat(Protocol):
    """What decoding needs of a source (a source's :class:`stream.sources.Wire`).

    ``careful(obj, n)`` turns one parsed JSON object into its ``n`` features or raises
    :class:`BadInput`; ``decoder`` parses one value into the source's msgspec struct and
    ``fast(msgs, n)`` turns many of them into ``x[m, n]`` float64 and ``good[m]`` (rows the careful
    path would accept with the same values).
    """

    @property
    def careful(self) -> CarefulFeatures: ...
    @property
    def decoder(self) -> Callable[[bytes], Any]: ...
    @property
    def fast(self) -> FastFeatures: ...


@dataclass
class Decoded:
    """Good records as arrays (positions ``index`` into the input list) plus bad ones as errors.

    Example:
        >>> from types import SimpleNamespace as R
        >>> recs = [R(topic="t", partition=0, offset=0, key=b"a", value=b'{"stream":"a","ts":1,"values":[2]}',
        ...           timestamp=0), R(topic="t", partition=0, offset=1, key=b"a", value=b"{", timestamp=0)]
        >>> from stream.sources import SOURCES
        >>> d = decode_batch(SOURCES["sensors"].wire, recs, n_features=1, now=10.0)
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
        raise BadInput("non_finite", f"field {name!r} holds a number too large for a float") from None


def number(obj: dict[str, Any], name: str, *, nullable: bool = False) -> float | None:
    """Field ``name`` of a parsed record as a finite float (``None`` if ``nullable`` and null/absent)."""
    if name not in obj:
        if nullable:
            return None
        raise BadInput("missing_field", f"field {name!r} is missing")
    v = obj[name]
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise BadInput("bad_shape", f"field {name!r} must be a number, got {type(v).__name__}")
    f = _float(v, name)
    if not math.isfinite(f):
        raise BadInput("non_finite", f"field {name!r} is {f}")
    return f


def vector(obj: dict[str, Any], name: str, n: int, *, missing: bool = False) -> list[float]:
    """Field ``name`` as ``n`` finite floats (``missing``: ``null`` items are NaN, but not all of them)."""
    if name not in obj:
        raise BadInput("missing_field", f"field {name!r} is missing")
    v = obj[name]
    if not isinstance(v, list):
        raise BadInput("bad_shape", f"field {name!r} must be a list of numbers, got {type(v).__name__}")
    if len(v) != n:
        raise BadInput("wrong_length", f"field {name!r} has {len(v)} values; this model takes {n}")
    for e in v:
        if (isinstance(e, bool) or not isinstance(e, int | float)) and not (missing and e is None):
            raise BadInput("bad_shape", f"field {name!r} must hold numbers only, found {type(e).__name__}")
    out = [math.nan if e is None else _float(e, name) for e in v]
    if not all(math.isfinite(e) for e, raw in zip(out, v) if raw is not None):
        raise BadInput("non_finite", f"field {name!r} holds NaN or infinity")
    if n and all(e is None for e in v):
        raise BadInput("all_missing", f"field {name!r} has no value (every one is null)")
    return out


def _iso_time(v: str) -> float:
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise BadInput("bad_shape", f"field 'ts' is not ISO-8601 nor epoch seconds: {v[:40]!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _event_time(obj: dict[str, Any]) -> float:
    if "ts" not in obj:
        raise BadInput("missing_field", "field 'ts' is missing")
    v = obj["ts"]
    if isinstance(v, str):
        return _iso_time(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise BadInput("bad_shape", f"field 'ts' must be epoch seconds or ISO-8601, got {type(v).__name__}")
    t = _float(v, "ts")
    if not math.isfinite(t):
        raise BadInput("non_finite", f"field 'ts' is {t}")
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
        raise BadInput("not_json", "value is not valid UTF-8 JSON") from None


def _decode_record(
    rec: RecordLike,
    features: CarefulFeatures,
    n_features: int,
    now: float,
    horizon: float,
    max_payload_bytes: int,
) -> tuple[str, float, Sequence[float] | np.ndarray]:
    """One record on the careful path: (stream, event time, feature row), or :class:`BadInput`."""
    value = rec.value
    if value is None:
        raise BadInput("not_json", "value is empty (tombstone)")
    if len(value) > max_payload_bytes:
        raise BadInput("too_large", f"value has {len(value)} bytes; the limit is {max_payload_bytes}")
    obj = _loads(value)
    if not isinstance(obj, dict):
        raise BadInput("bad_shape", f"value must be a JSON object, got {type(obj).__name__}")
    if "stream" not in obj:
        raise BadInput("missing_field", "field 'stream' is missing")
    stream = obj["stream"]
    if not isinstance(stream, str) or not stream:
        raise BadInput("bad_shape", "field 'stream' must be a non-empty string")
    if rec.key is not None:
        try:
            key = rec.key.decode()
        except UnicodeDecodeError:
            raise BadInput("key_mismatch", "Kafka key is not UTF-8") from None
        if key != stream:
            raise BadInput("key_mismatch", f"Kafka key {key[:64]!r} differs from payload stream {stream[:64]!r}")
    ts = _event_time(obj)
    if ts > horizon:
        raise BadInput("future_timestamp", f"event time {ts:.3f} is {ts - now:.0f} s in the future")
    return stream, ts, features(obj, n_features)


def _decode_careful(
    source: WireFormat,
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
    source: WireFormat,
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
    features = source.careful
    index: list[int] = []
    ids: list[str] = []
    tss: list[float] = []
    rows: list[Sequence[float] | np.ndarray] = []
    for i in positions:
        try:
            stream, ts, x = _decode_record(records[i], features, n_features, now, horizon, max_payload_bytes)
        except BadInput as bad:
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
# msgspec decodes and type-checks a record in C into the source's typed Struct (unknown fields are
# skipped, like the careful path ignores them), the checks that need numbers (finite, in range, not
# in the future, not all missing) run on whole arrays. A record the fast path has any doubt about
# goes the careful path, which alone decides every rejection: reasons and messages stay identical.
# The fast path never rejects, and it accepts only what the careful path accepts with the same values
# (tests/test_stream_codec.py compares both on valid and invalid records of every source).


def lists_fast(vals: list[list[float | None]], n: int, *, missing: bool) -> tuple[np.ndarray, np.ndarray]:
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
        except Exception:  # msgspec's errors, a bad ISO time (BadInput), a stream id it cannot encode
            slow.append(i)
            continue
        pos.append(i)
        ids.append(stream)
        tss.append(ts)
        msgs.append(msg)
    return pos, ids, tss, msgs, slow


def decode_batch(
    source: WireFormat,
    records: Sequence[RecordLike],
    *,
    n_features: int,
    now: float,
    max_future_s: float = 300.0,
    max_payload_bytes: int = 65536,
) -> Decoded:
    """Decode a micro-batch of one source (its wire format, e.g. ``SOURCES["sensors"].wire``).

    Records go the fast path (msgspec, checks on arrays) when it can vouch for them, the others
    the careful per-record path; the result is the same as the careful path's for every record.
    """
    horizon = now + max_future_s
    pos, ids, tss, msgs, slow = _scan(source.decoder, records, max_payload_bytes)
    ts = np.asarray(tss, np.float64)  # [m]
    x, good = source.fast(msgs, n_features)  # [m, F], [m]
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
    source: WireFormat,
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
