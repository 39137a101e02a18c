"""Codec: every bad-input kind becomes a reason; good records become arrays; encoders round-trip."""

from __future__ import annotations

import base64
import json
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.codec import (
    REASONS,
    Decoded,
    decode_batch,
    encode_alert,
    encode_dead,
    encode_prediction,
    encode_predictions,
)
from stream.codec.decode import _decode_careful
from stream.codec.encode import DEAD_EMBED_MAX
from stream.sources import SOURCES

NOW = 1_700_000_000.0


def rec(value: bytes | None, key: bytes | None = b"s1", offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(topic="t", partition=3, offset=offset, key=key, value=value, timestamp=1234)


def one(source: str, value: bytes | None, key: bytes | None = b"s1", n: int = 1) -> tuple[str, str] | None:
    d = decode_batch(
        SOURCES[source].wire, [rec(value, key)], n_features=n, now=NOW, max_future_s=60, max_payload_bytes=2048
    )
    assert len(d.index) + len(d.errors) == 1
    return (d.errors[0][1], d.errors[0][2]) if d.errors else None


def j(obj: object) -> bytes:
    return json.dumps(obj).encode()  # stdlib: writes NaN/Infinity literals


GOOD = {"stream": "s1", "ts": NOW - 1, "values": [1.5]}


@pytest.mark.parametrize(
    ("source", "value", "key", "n", "reason"),
    [
        ("sensors", b"\xff\xfe not json", b"s1", 1, "not_json"),
        ("sensors", b'{"stream": "s1", ', b"s1", 1, "not_json"),
        ("sensors", None, b"s1", 1, "not_json"),
        ("sensors", b"[1, 2]", b"s1", 1, "bad_shape"),
        ("sensors", j({**GOOD, "values": "1.5"}), b"s1", 1, "bad_shape"),
        ("sensors", j({**GOOD, "values": ["a"]}), b"s1", 1, "bad_shape"),
        ("sensors", j({**GOOD, "values": [True]}), b"s1", 1, "bad_shape"),
        ("sensors", j({**GOOD, "stream": 7}), None, 1, "bad_shape"),
        ("sensors", j({**GOOD, "ts": "yesterday"}), b"s1", 1, "bad_shape"),
        ("sensors", j({"ts": NOW, "values": [1.0]}), b"s1", 1, "missing_field"),
        ("sensors", j({"stream": "s1", "values": [1.0]}), b"s1", 1, "missing_field"),
        ("sensors", j({"stream": "s1", "ts": NOW}), b"s1", 1, "missing_field"),
        ("speech", j({"stream": "s1", "ts": NOW, "values": [1.0]}), b"s1", 8, "missing_field"),
        ("ticks", j({"stream": "s1", "ts": NOW, "price": 1.0}), b"s1", 2, "missing_field"),
        ("sensors", j({**GOOD, "values": [1.0, 2.0]}), b"s1", 1, "wrong_length"),
        ("speech", j({"stream": "s1", "ts": NOW, "features": [0.0] * 7}), b"s1", 8, "wrong_length"),
        ("sensors", j({**GOOD, "values": [math.nan]}), b"s1", 1, "non_finite"),
        ("sensors", j({**GOOD, "values": [math.inf]}), b"s1", 1, "non_finite"),
        ("sensors", b'{"stream": "s1", "ts": 1, "values": [1e39]}', b"s1", 1, "non_finite"),
        ("sensors", j({**GOOD, "ts": math.nan}), b"s1", 1, "non_finite"),
        ("ticks", j({"stream": "s1", "ts": NOW, "price": math.inf, "size": 1}), b"s1", 2, "non_finite"),
        ("ticks", j({"stream": "s1", "ts": NOW, "price": -1.0, "size": 1}), b"s1", 2, "out_of_range"),
        ("ticks", j({"stream": "s1", "ts": NOW, "price": 1.0, "size": -1}), b"s1", 2, "out_of_range"),
        ("sensors", j(GOOD), b"other", 1, "key_mismatch"),
        ("sensors", j(GOOD), b"\xff", 1, "key_mismatch"),
        ("sensors", j({**GOOD, "ts": NOW + 3600}), b"s1", 1, "future_timestamp"),
        ("sensors", j({**GOOD, "pad": "x" * 4096}), b"s1", 1, "too_large"),
        ("sensors", j({**GOOD, "values": [None]}), b"s1", 1, "all_missing"),
        ("machines", j({**GOOD, "values": [None, None]}), b"s1", 2, "all_missing"),
        ("machines", j({**GOOD, "values": [1.0, math.nan]}), b"s1", 2, "non_finite"),
        ("machines", j({**GOOD, "values": [1.0, "x"]}), b"s1", 2, "bad_shape"),
        ("ticks", j({"stream": "s1", "ts": NOW, "price": 1.0, "size": 1, "bid": math.inf}), b"s1", 4, "non_finite"),
        ("ticks", j({"stream": "s1", "ts": NOW, "price": 0.0, "size": 1}), b"s1", 4, "out_of_range"),
        ("ticks", j({"stream": "s1", "ts": NOW, "price": 1.0, "size": 1}), b"s1", 3, "wrong_length"),
    ],
)
def test_bad_inputs_get_their_reason(source: str, value: bytes | None, key: bytes | None, n: int, reason: str) -> None:
    err = one(source, value, key, n)
    assert err is not None and err[0] == reason, err
    assert reason in REASONS
    assert err[1]  # a human-readable message


def test_good_inputs_all_sources_and_timestamp_forms() -> None:
    assert one("sensors", j(GOOD)) is None
    assert one("sensors", j(GOOD), key=None) is None  # null keys are accepted
    assert one("sensors", j({**GOOD, "ts": "2023-11-14T22:13:19Z"})) is None
    assert one("speech", j({"stream": "s1", "ts": NOW, "features": list(range(8))}), n=8) is None
    tick = {"stream": "s1", "ts": NOW, "price": 101.5, "size": 3, "bid": None, "ask": 101.6}
    d = decode_batch(SOURCES["ticks"].wire, [rec(j(tick))], n_features=2, now=NOW)
    np.testing.assert_allclose(d.x[0], [math.log(101.5), math.log1p(3)], rtol=1e-6)
    raw = decode_batch(
        SOURCES["ticks"].wire, [rec(j(tick))], n_features=4, now=NOW
    )  # a ticks model: raw, missing bid NaN
    assert raw.errors == [] and raw.x[0, :2].tolist() == [101.5, 3.0] and np.isnan(raw.x[0, 2])
    assert raw.x[0, 3] == pytest.approx(101.6)
    mv = decode_batch(SOURCES["machines"].wire, [rec(j({**GOOD, "values": [1.0, None, 3]}))], n_features=3, now=NOW)
    assert mv.errors == [] and np.isnan(mv.x[0, 1]) and mv.x[0, [0, 2]].tolist() == [1.0, 3.0]
    iso = decode_batch(SOURCES["sensors"].wire, [rec(j({**GOOD, "ts": "2023-11-14T22:13:20"}))], n_features=1, now=NOW)
    assert iso.ts[0] == pytest.approx(1_700_000_000.0)  # naive ISO-8601 means UTC


@pytest.mark.parametrize(
    ("source", "template", "n"),
    [
        ("sensors", '{"stream": "s1", "ts": 1, "values": [BIG]}', 1),
        ("sensors", '{"stream": "s1", "ts": BIG, "values": [1.0]}', 1),
        ("machines", '{"stream": "s1", "ts": 1, "values": [1.0, -BIG]}', 2),
        ("speech", '{"stream": "s1", "ts": 1, "features": [0, 0, 0, 0, 0, 0, 0, BIG]}', 8),
        ("ticks", '{"stream": "s1", "ts": 1, "price": BIG, "size": 1}', 2),
    ],
)
def test_integer_beyond_float_range_is_a_dead_letter_not_a_batch_failure(source: str, template: str, n: int) -> None:
    """Python's json parses a 400-digit integer exactly; float() of it overflows. That record is
    non_finite; its neighbours still decode."""
    bad = template.replace("BIG", "1" + "0" * 400).encode()
    good = {"sensors": GOOD, "machines": {**GOOD, "values": [1.0, 2.0]}}.get(source)
    recs = [rec(bad, offset=0)] + ([rec(j(good), offset=1)] if good else [])
    d = decode_batch(SOURCES[source].wire, recs, n_features=n, now=NOW)
    assert [(e[0], e[1]) for e in d.errors] == [(0, "non_finite")]
    assert "too large" in d.errors[0][2]
    assert d.index.tolist() == ([1] if good else [])


def test_mixed_batch_keeps_positions_and_order() -> None:
    recs = [rec(j({**GOOD, "values": [float(i)]}), offset=i) if i % 3 else rec(b"bad", offset=i) for i in range(10)]
    d = decode_batch(SOURCES["sensors"].wire, recs, n_features=1, now=NOW)
    assert d.index.tolist() == [1, 2, 4, 5, 7, 8]
    assert d.x[:, 0].tolist() == [1.0, 2.0, 4.0, 5.0, 7.0, 8.0]
    assert [e[0] for e in d.errors] == [0, 3, 6, 9]
    assert d.x.dtype == np.float32 and d.ts.dtype == np.float64


def test_encoders() -> None:
    r = rec(b"\x00raw", key=b"s1", offset=42)
    p = orjson.loads(
        encode_prediction(
            r, stream="s1", source="sensors", ts=1.0, model="m", prediction=[2.0], score=0.25, anomaly=False
        )
    )
    assert p["id"] == "t:3:42" and p["input"] == {"topic": "t", "partition": 3, "offset": 42}
    assert p["prediction"] == [2.0] and p["model"] == "m" and p["source"] == "sensors"
    a = orjson.loads(
        encode_alert(
            r,
            stream="s1",
            source="sensors",
            ts=1.0,
            model="m",
            state="open",
            score=0.95,
            threshold=0.5,
            expected=[1.0],
            actual=[9.0],
        )
    )
    assert a["state"] == "open" and a["severity"] == "critical" and "expected [1]" in a["explanation"]
    assert "kind" not in a and "channel" not in a  # only when given
    k = orjson.loads(
        encode_alert(
            r,
            stream="m1",
            source="machines",
            ts=1.0,
            model="m",
            state="open",
            score=0.8,
            threshold=0.5,
            expected=[1.0, 2.0],
            actual=[1.0, math.nan],
            kind="anomaly",
            channel="vibration",
            explanation="open: vibration drove it",
        )
    )
    assert k["kind"] == "anomaly" and k["channel"] == "vibration" and k["explanation"] == "open: vibration drove it"
    assert k["actual"] == [1.0, None]  # a missing value is null
    d = orjson.loads(encode_dead(r, source="sensors", reason="not_json", message="bad"))
    assert base64.b64decode(d["value_b64"]) == b"\x00raw" and d["reason"] == "not_json"
    assert d["input"]["offset"] == 42 and d["input"]["timestamp_ms"] == 1234
    assert "value_truncated" not in d
    # a huge rejected value: the dead letter carries its head and its size, and stays far under the
    # broker's 1 MiB message.max.bytes (a larger one failed the whole batch's send and stopped the worker)
    huge = rec(b"x" * 900_000, offset=43)
    d = orjson.loads(blob := encode_dead(huge, source="sensors", reason="too_large", message="big"))
    assert len(blob) < 400_000 and d["value_truncated"] is True and d["value_bytes"] == 900_000
    assert base64.b64decode(d["value_b64"]) == b"x" * DEAD_EMBED_MAX


# -- the fast path (msgspec, checks on arrays) equals the careful per-record path -----------------

FAST_SOURCES = {"sensors": 1, "machines": 4, "speech": 8, "ticks": 4, "audio": 512}
PCM = base64.b64encode(np.arange(-256, 256, dtype="<i2").tobytes()).decode()  # 512 samples


def assert_same(fast: Decoded, careful: Decoded) -> None:
    """Bit-identical: positions, ids, event times, features (NaN payloads included), errors in order."""
    assert fast.index.dtype == careful.index.dtype == np.int64
    assert fast.index.tolist() == careful.index.tolist()
    assert fast.stream_ids == careful.stream_ids
    assert fast.ts.dtype == careful.ts.dtype == np.float64 and fast.ts.tobytes() == careful.ts.tobytes()
    assert fast.x.dtype == careful.x.dtype == np.float32 and fast.x.shape == careful.x.shape
    assert fast.x.tobytes() == careful.x.tobytes()
    assert fast.errors == careful.errors


def both(
    source: str,
    values: list[tuple[bytes | None, bytes | None]],
    n: int,
    *,
    reasons: list[str] | None = None,
    **kw: float,
) -> Decoded:
    """The fast ``decode_batch`` of ``values``, checked equal to the careful path; with ``reasons``,
    also checked to dead-letter exactly those (in order; the others decoded)."""
    recs = [rec(v, key=k, offset=i) for i, (v, k) in enumerate(values)]
    args = {"n_features": n, "now": NOW, "max_future_s": 60.0, "max_payload_bytes": 4096, **kw}
    fast = decode_batch(SOURCES[source].wire, recs, **args)  # type: ignore[arg-type]
    assert_same(fast, _decode_careful(SOURCES[source].wire, recs, **args))  # type: ignore[arg-type]
    if reasons is not None:
        assert [e[1] for e in fast.errors] == reasons
        assert len(fast.index) == len(values) - len(reasons)
    return fast


def raw(fields: str) -> bytes:
    """A hand-written JSON object (number spellings and literals exactly as written)."""
    return ("{" + fields + "}").encode()


def common_cases(body: str) -> list[tuple[bytes | None, bytes | None]]:
    """Records every source shares: envelope, key, timestamp and JSON-level cases around a valid ``body``."""
    ok = raw(f'"stream": "s1", "ts": {NOW - 1}, {body}')
    deep_ok = raw(f'"stream": "s1", "ts": 1, {body}, "pad": ' + "[" * 100 + "]" * 100)
    return [
        (ok, b"s1"),
        (ok, None),  # a null key is accepted
        (ok, b"other"),  # key_mismatch
        (ok, b"\xff"),  # key not UTF-8
        (ok, b"s1 "),
        (None, b"s1"),  # tombstone
        (b"", b"s1"),
        (b"not json", b"s1"),
        (b"[1, 2]", b"s1"),
        (b"null", b"s1"),
        (b'"s1"', b"s1"),
        (ok + b"\x00", b"s1"),  # trailing garbage
        (b" \n" + ok + b" \t\n", b"s1"),  # whitespace around the document
        (b"\xef\xbb\xbf" + ok, b"s1"),  # UTF-8 BOM: only the stdlib fallback parses it
        (ok.decode().encode("utf-16-le"), b"s1"),  # UTF-16: only the stdlib fallback parses it
        (ok.decode().encode("utf-16"), b"s1"),
        (raw(f'"ts": 1, {body}'), b"s1"),  # missing stream
        (raw(f'"stream": "s1", {body}'), b"s1"),  # missing ts
        (raw(f'"stream": "", "ts": 1, {body}'), b""),  # empty stream
        (raw(f'"stream": 7, "ts": 1, {body}'), None),
        (raw(f'"stream": null, "ts": 1, {body}'), None),
        (raw(f'"stream": ["s1"], "ts": 1, {body}'), None),
        (raw(f'"stream": "x", "stream": "s1", "ts": 1, {body}'), b"s1"),  # duplicate keys: the last wins
        (raw(f'"stream": "s1", "str\\u0065am": "x", "ts": 1, {body}'), b"x"),  # escaped key name
        (raw(f'"stream": "p\\u00fcmpe-\\u20ac", "ts": 1, {body}'), "pümpe-€".encode()),  # escapes, non-ASCII
        (raw(f'"stream": "pümpe-€", "ts": 1, {body}'), "pümpe-€".encode()),
        (raw(f'"stream": "pümpe", "ts": 1, {body}'), b"pumpe"),
        (raw(f'"stream": "a\\u0000b", "ts": 1, {body}'), None),
        (raw(f'"stream": "\\ud83d\\ude00", "ts": 1, {body}'), "😀".encode()),  # a surrogate pair
        (raw(f'"stream": "\\ud800", "ts": 1, {body}'), None),  # a lone surrogate (stdlib parses it)
        (raw(f'"stream": "\\ud800", "ts": 1, {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": true, {body}'), b"s1"),  # a bool is not a number
        (raw(f'"stream": "s1", "ts": null, {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": [1], {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": NaN, {body}'), b"s1"),  # stdlib literals: non_finite
        (raw(f'"stream": "s1", "ts": Infinity, {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": -Infinity, {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": 1e999, {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": -0, {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": -0.0, {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": 1700000000, {body}'), b"s1"),  # an integer
        (raw(f'"stream": "s1", "ts": 9007199254740993, {body}'), b"s1"),  # 2**53 + 1 (future)
        (raw(f'"stream": "s1", "ts": -9007199254740993, {body}'), b"s1"),  # rounds like float(int)
        (raw(f'"stream": "s1", "ts": -18446744073709551617, {body}'), b"s1"),  # beyond 64 bits
        (raw(f'"stream": "s1", "ts": 1.6999999999999999999999e9, {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": 17e8, {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": {NOW + 59}, {body}'), b"s1"),  # within max_future_s
        (raw(f'"stream": "s1", "ts": {NOW + 61}, {body}'), b"s1"),  # future_timestamp
        (raw(f'"stream": "s1", "ts": "2023-11-14T22:13:19Z", {body}'), b"s1"),  # ISO-8601
        (raw(f'"stream": "s1", "ts": "2023-11-14T22:13:19.123456", {body}'), b"s1"),  # naive: UTC
        (raw(f'"stream": "s1", "ts": "2023-11-14T23:13:19+01:00", {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": "2023-11-14", {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": "2099-01-01T00:00:00Z", {body}'), b"s1"),  # ISO in the future
        (raw(f'"stream": "s1", "ts": "yesterday", {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": "", {body}'), b"s1"),
        (raw(f'"stream": "s1", "ts": "1700000000", {body}'), b"s1"),  # a number in a string is not one
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": {{"a": [1, "x", null]}}'), b"s1"),  # ignored
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": 1e999'), b"s1"),  # orjson refuses, json parses
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": NaN'), b"s1"),
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": 123456789012345678901234567890'), b"s1"),
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": "\\ud800"'), b"s1"),  # lone surrogate escape
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": "\\udc00x"'), b"s1"),
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": "\\q"'), b"s1"),  # invalid escape
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": "') + b'\xff"}', b"s1"),  # invalid UTF-8
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": "') + b'\xc0\xaf"}', b"s1"),  # overlong UTF-8
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": "') + b'\xed\xa0\x80"}', b"s1"),  # UTF-8 surrogate
        (raw(f'"stream": "s1", "ts": 1, {body}, "extra": "\x01"'), b"s1"),  # raw control character
        (deep_ok, b"s1"),
        (raw(f'"stream": "s1", "ts": 1, {body}, "pad": ' + "[" * 1100 + "]" * 1100), b"s1"),  # too deep
        (raw(f'"stream": "s1", "ts": 1, {body}, "pad": ' + "{" * 1100 + "}" * 1100), b"s1"),
        (raw(f'"stream": "s1", "ts": 1, {body}, "pad": "{"x" * 5000}"'), b"s1"),  # too_large
        (raw(f'"stream": "s1", "ts": 1, {body},'), b"s1"),  # trailing comma
        (raw("'stream': 's1', 'ts': 1"), b"s1"),  # not JSON
    ]


FEATURE_CASES: dict[str, list[str]] = {
    "sensors": [
        '"values": [1.5]',
        '"values": [0]',
        '"values": [-0]',
        '"values": [-0.0]',
        '"values": [1e-320]',  # subnormal
        '"values": [1e-50]',  # below float32: 0
        '"values": [3.4028235e38]',
        '"values": [3.5e38]',  # overflows float32
        '"values": [1e39]',
        '"values": [1e308]',
        '"values": [1e309]',
        '"values": [NaN]',
        '"values": [Infinity]',
        '"values": [-Infinity]',
        '"values": [null]',  # all_missing
        '"values": [true]',
        '"values": [false]',
        '"values": ["1.5"]',
        '"values": [[1.5]]',
        '"values": [{"v": 1}]',
        '"values": []',
        '"values": [1, 2]',
        '"values": 1.5',
        '"values": null',
        '"values": {"0": 1.5}',
        '"values": [9007199254740993]',
        '"values": [18446744073709551615]',
        '"values": [18446744073709551616]',
        '"values": [123456789012345678901234567890123456789012]',  # an int beyond float32
        '"values": [0.1000000000000000055511151231257827021181583404541015625]',
        '"values": [1.0000000596046448]',  # a float32 rounding tie
        '"VALUES": [1.5]',
        '"values": [1.5], "values": [2.5]',
    ],
    "machines": [
        '"values": [1.5, 2, -3e2, 4.25]',
        '"values": [null, 2, null, 4]',
        '"values": [null, null, null, null]',
        '"values": [1, 2, 3]',
        '"values": [1, 2, 3, 4, 5]',
        '"values": [1, 2, 3, NaN]',
        '"values": [1, 2, 3, Infinity]',
        '"values": [1, 2, 3, 1e39]',
        '"values": [1, 2, 3, true]',
        '"values": [1, 2, 3, "4"]',
        '"values": [null, null, null, 1e39]',
        '"values": [null, null, null, NaN]',
        '"values": [-0, -0.0, 0, 0.0]',
    ],
    "speech": [
        '"features": [0, 1, 2, 3, 4, 5, 6, 7]',
        '"features": [-4.12345, 1e-3, 2.5, 3, 4, 5, 6, 7.75]',
        '"features": [0, 1, 2, 3, 4, 5, 6]',
        '"features": [0, 1, 2, 3, 4, 5, 6, null]',
        '"features": [null, null, null, null, null, null, null, null]',
        '"features": [0, 1, 2, 3, 4, 5, 6, NaN]',
        '"features": [0, 1, 2, 3, 4, 5, 6, 1e39]',
        '"features": [0, 1, 2, 3, 4, 5, 6, false]',
        '"values": [0, 1, 2, 3, 4, 5, 6, 7]',
    ],
    "ticks": [
        '"price": 101.5, "size": 3, "bid": 101.4, "ask": 101.6',
        '"price": 101.5, "size": 3',
        '"price": 101.5, "size": 0, "bid": null, "ask": null',
        '"price": 101.5, "size": 3, "bid": null',
        '"price": 1e-300, "size": 1e300',
        '"price": 1e39, "size": 1',  # overflows float32 as a raw tick
        '"price": 0, "size": 1',
        '"price": -0.0, "size": 1',
        '"price": -1, "size": 1',
        '"price": 1, "size": -1e-9',
        '"price": 1, "size": -0.0',
        '"price": NaN, "size": 1',
        '"price": 1, "size": Infinity',
        '"price": 1, "size": 1, "bid": Infinity',
        '"price": 1, "size": 1, "ask": NaN',
        '"price": 1, "size": 1, "bid": "1"',
        '"price": 1, "size": 1, "ask": true',
        '"price": true, "size": 1',
        '"price": "101.5", "size": 1',
        '"price": null, "size": 1',
        '"price": 101.5',
        '"size": 3',
        '"price": 101.5, "size": 3, "bid": 1e39',
    ],
    "audio": [
        f'"pcm": "{PCM}"',
        f'"pcm": "{PCM[:-4]}"',  # 3 bytes short
        f'"pcm": "{PCM}AAAA"',  # 3 bytes long
        f'"pcm": "{PCM[:-1]}"',  # bad padding
        f'"pcm": "{PCM}="',  # a surplus "=": b64decode(validate=True) accepts it, msgspec does not
        f'"pcm": "{PCM[:-4]}AAA="',  # 1 byte short, padded
        f'"pcm": "{PCM[:-4]}AB=="',  # non-zero bits in the padding
        f'"pcm": "{PCM[:100]}!{PCM[101:]}"',  # not base64
        f'"pcm": "{PCM[:100]} {PCM[100:]}"',  # whitespace: rejected when validating
        f'"pcm": "{PCM[:100]}\\n{PCM[100:]}"',
        f'"pcm": "{PCM[:100]}é{PCM[101:]}"',  # non-ASCII
        f'"pcm": "{PCM.replace("+", "-").replace("/", "_")}"',  # the URL-safe alphabet is not base64 here
        '"pcm": ""',
        '"pcm": 1',
        '"pcm": null',
        '"pcm": ["AAAA"]',
        '"PCM": "AAAA"',
    ],
}


@pytest.mark.parametrize("source", sorted(FAST_SOURCES))
def test_fast_path_equals_careful_path(source: str) -> None:
    n = FAST_SOURCES[source]
    values: list[tuple[bytes | None, bytes | None]] = []
    for body in FEATURE_CASES[source]:
        values += common_cases(body)
    d = both(source, values, n)
    assert len(d.index) + len(d.errors) == len(values)
    assert len(d.index) > 10 and len(d.errors) > 10  # both kinds are in the mix
    assert len({e[1] for e in d.errors}) >= 5
    for shuffle in range(3):  # other interleavings of the same records
        order = np.random.default_rng(shuffle).permutation(len(values)).tolist()
        both(source, [values[i] for i in order], n)


@pytest.mark.parametrize(("source", "n"), [("ticks", 2), ("ticks", 3), ("ticks", 0), ("sensors", 2), ("speech", 7)])
def test_fast_path_equals_careful_path_other_model_widths(source: str, n: int) -> None:
    values: list[tuple[bytes | None, bytes | None]] = []
    for body in FEATURE_CASES[source]:
        values += common_cases(body)[:3]
    both(source, values, n)


def test_fast_path_limits_match_the_careful_path() -> None:
    body = FEATURE_CASES["sensors"][0]
    big = raw(f'"stream": "s1", "ts": 1, {body}, "pad": "{"x" * 500}"')
    both("sensors", [(big, b"s1")], 1, max_payload_bytes=len(big), reasons=[])  # at the limit: accepted
    both("sensors", [(big, b"s1")], 1, max_payload_bytes=len(big) - 1, reasons=["too_large"])  # one byte over
    now, ahead = raw(f'"stream": "s1", "ts": {NOW}, {body}'), raw(f'"stream": "s1", "ts": {NOW + 1e-6}, {body}')
    both("sensors", [(now, b"s1")], 1, max_future_s=0.0, reasons=[])  # exactly now: accepted
    both("sensors", [(ahead, b"s1")], 1, max_future_s=0.0, reasons=["future_timestamp"])  # a microsecond ahead
    both("sensors", [], 1, reasons=[])
    both("audio", [], 512, reasons=[])


def test_fast_path_handles_clean_batches_without_the_careful_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid records of every source never reach the per-record path (that is the speed-up)."""
    import stream.codec.decode as codec

    calls: list[int] = []
    real = codec._decode_record
    monkeypatch.setattr(codec, "_decode_record", lambda *a: calls.append(1) or real(*a))
    for source, body in [
        ("sensors", '"values": [1.5]'),
        ("machines", '"values": [1.5, null, 3, 4]'),
        ("speech", '"features": [0, 1, 2, 3, 4, 5, 6, 7]'),
        ("ticks", '"price": 101.5, "size": 3, "bid": null, "ask": 101.6'),
        ("audio", f'"pcm": "{PCM}"'),
    ]:
        values = [(raw(f'"stream": "s{i}", "ts": {NOW - i}, {body}'), f"s{i}".encode()) for i in range(50)]
        values.append((raw(f'"stream": "é", "ts": "2023-11-14T22:13:19Z", {body}'), "é".encode()))
        d = both(source, values, FAST_SOURCES[source])
        assert d.errors == [] and len(d.index) == 51
    assert calls == [1] * 5 * 51  # the careful reference of `both`, never the fast decode_batch
    calls.clear()
    d = decode_batch(SOURCES["sensors"].wire, [rec(b"{", key=b"s1"), rec(j(GOOD), key=b"s1")], n_features=1, now=NOW)
    assert calls == [1] and d.index.tolist() == [1] and d.errors[0][:2] == (0, "not_json")


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fast_path_equals_careful_path_fuzzed(data: st.DataObject) -> None:
    """Random payloads from valid-ish pieces, then random byte edits: both paths agree on every record."""
    source = data.draw(st.sampled_from(sorted(FAST_SOURCES)))
    n = FAST_SOURCES[source]
    number = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(width=32),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.booleans(),
        st.none(),
        st.text(max_size=3),
    )
    vector = st.lists(number, min_size=max(0, min(n, 8) - 1), max_size=min(n, 8) + 1)
    fields: dict[str, st.SearchStrategy[object]] = {
        "stream": st.one_of(st.sampled_from(["s1", "s2", "pümpe", ""]), st.text(max_size=4), number),
        "ts": st.one_of(
            st.floats(min_value=NOW - 1e6, max_value=NOW + 120), number, st.sampled_from(["2023-11-14T22:13:19Z", "x"])
        ),
        "values": vector,
        "features": vector,
        "price": number,
        "size": number,
        "bid": number,
        "ask": number,
        "pcm": st.one_of(st.sampled_from([PCM, PCM[:-4], PCM + "="]), st.text(max_size=8)),
        "extra": st.one_of(number, st.text(max_size=4)),
    }
    values: list[tuple[bytes | None, bytes | None]] = []
    for _ in range(data.draw(st.integers(1, 12))):
        obj = {k: data.draw(v) for k, v in fields.items() if data.draw(st.integers(0, 9)) > 0}
        value = json.dumps(obj, allow_nan=True).encode()  # NaN/Infinity literals included
        for _ in range(data.draw(st.integers(0, 2))):  # byte edits: truncation, garbage, flips
            if not value:
                break
            at = data.draw(st.integers(0, len(value) - 1))
            value = value[:at] + data.draw(st.binary(max_size=2)) + value[at + 1 :]
        key = data.draw(st.sampled_from([b"s1", b"s2", None, "pümpe".encode(), b"\xff"]))
        values.append((value, key))
    both(source, values, n, max_future_s=60.0)


def test_fast_path_equals_careful_path_at_any_nesting_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    """orjson parses up to 1023 levels, the stdlib fallback up to the recursion limit, msgspec to
    about the recursion limit: deeply nested values go the careful path (whatever the limit is, so
    msgspec never accepts what both careful parsers refuse), shallow ones stay on the fast path."""
    import stream.codec.decode as codec

    body = FEATURE_CASES["sensors"][0]
    deep = [(raw(f'"stream": "s1", "ts": 1, {body}, "pad": ' + "[" * d + "]" * d), b"s1") for d in range(60, 1200, 7)]
    d = both("sensors", deep, 1, max_payload_bytes=1 << 20)
    assert d.index.tolist() and d.errors  # some depths parse, deeper ones are not_json
    calls: list[int] = []
    real = codec._decode_record
    monkeypatch.setattr(codec, "_decode_record", lambda *a: calls.append(1) or real(*a))
    nested = {"stream": "s1", "ts": 1, "values": [1.5], "pad": [[[[1]]]] * 20}
    for pad in range(0, 400, 20):  # at most 64 brackets: the fast path, however long the value
        decode_batch(SOURCES["sensors"].wire, [rec(j({**nested, "x": "y" * pad}))], n_features=1, now=NOW)
    assert calls == []
    decode_batch(SOURCES["sensors"].wire, [rec(j({**nested, "pad": [[[[1]]]] * 30}))], n_features=1, now=NOW)
    assert calls == [1]  # more than 64 brackets in a long value: the careful path


def assert_batch_encodes_like_one_by_one(cases: list[tuple], *, source: str, model: str) -> None:
    """``encode_predictions`` over (record, stream, ts, prediction, score, anomaly) cases gives, byte for
    byte, what ``encode_prediction`` gives per case."""
    got = encode_predictions(
        [c[0] for c in cases],
        streams=[c[1] for c in cases],
        source=source,
        ts=[c[2] for c in cases],
        model=model,
        predictions=[c[3] for c in cases],
        scores=[c[4] for c in cases],
        anomalies=[c[5] for c in cases],
    )
    want = [
        encode_prediction(r, stream=st, source=source, ts=t, model=model, prediction=p, score=sc, anomaly=a)
        for r, st, t, p, sc, a in cases
    ]
    assert got == want


def test_encode_predictions_gives_the_bytes_of_encode_prediction() -> None:
    hostile = ["s1", 'a"b', ',{"id":"x"}', '},{"id":', "\\", '\\"', "pümpe-€", "😀", "\u2028", "\x00\x1f", ""]
    hostile += ['x",', '"",', '","', "],[", "%s", "%", "a:b", "\x7f", "s2"]  # cut and template characters
    recs = [
        SimpleNamespace(topic=t, partition=p, offset=o, key=None, value=b"", timestamp=0)
        for t, p, o in [("t", 0, 0), ('to"p,{"id":', 7, 2**40), ("sensor-readings", 2**31 - 1, 12)]
    ]
    preds = [[1.5], [math.nan, math.inf, -math.inf], [], [1e-320, -0.0, 1e308, 0.1], [2**53 + 1.0]]
    scores = [0.0, 0.25, math.nan, 1.0]
    cases = [
        (recs[i % 3], hostile[i % len(hostile)], 1.7e9 + i / 7, preds[i % 5], scores[i % 4], bool(i % 2))
        for i in range(60)
    ]
    for k in (0, 1, 2, 60, 5):
        batch = cases[:k] if k < 60 else cases
        if k == 5:  # strings without anything to escape (the fast case of the string column)
            batch = [(recs[0], f"s-{i}", *c[2:]) for i, c in enumerate(cases[:k])]
        assert_batch_encodes_like_one_by_one(batch, source="sensors", model='m"1')


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(max_size=12),
            st.text(max_size=6),
            st.lists(st.floats(), max_size=3),
            st.floats(),
            st.booleans(),
            st.integers(0, 2**40),
        ),
        max_size=20,
    )
)
def test_encode_predictions_gives_the_bytes_of_encode_prediction_fuzzed(
    rows: list[tuple[str, str, list[float], float, bool, int]],
) -> None:
    recs = [
        SimpleNamespace(topic=t, partition=3, offset=o, key=None, value=b"", timestamp=0) for _, t, _, _, _, o in rows
    ]
    cases = [(rec, r[0], r[3], r[2], r[3], r[4]) for rec, r in zip(recs, rows)]
    assert_batch_encodes_like_one_by_one(cases, source="ticks", model="m")


def assert_arrays_encode_like_their_lists(
    recs: list[Any], streams: list[str], ts: np.ndarray, preds: np.ndarray, scores: np.ndarray, anomalies: np.ndarray
) -> None:
    """The pipeline's call: numeric columns as numpy arrays give the bytes of ``encode_prediction`` on
    each array's ``tolist()`` values (what the pipeline passed before it handed over the arrays)."""
    got = encode_predictions(
        recs, streams=streams, source="sensors", ts=ts, model="m", predictions=preds, scores=scores, anomalies=anomalies
    )
    want = [
        encode_prediction(r, stream=st, source="sensors", ts=t, model="m", prediction=p, score=sc, anomaly=a)
        for r, st, t, p, sc, a in zip(recs, streams, ts.tolist(), preds.tolist(), scores.tolist(), anomalies.tolist())
    ]
    assert got == want


def test_encode_predictions_takes_numpy_columns() -> None:
    rng = np.random.default_rng(3)
    n = 40
    recs = [SimpleNamespace(topic="t", partition=i % 3, offset=i, key=None, value=b"", timestamp=0) for i in range(n)]
    streams = [f"s-{i}" for i in range(n)]
    ts = 1.7e9 + rng.random(n)  # [n] float64
    specials = [math.nan, math.inf, -math.inf, -0.0, 1e-45, 3.4e38, 0.1]
    for f in (1, 3, 0):
        preds = rng.standard_normal((n, f)).astype(np.float32)  # [n, F], as the Runner gives them
        if f:
            preds[: len(specials), 0] = specials
        scores = rng.random(n).astype(np.float32)  # [n]
        scores[:3] = [math.nan, 0.0, 1.0]
        anomalies = rng.random(n) > 0.5  # [n] bool
        assert_arrays_encode_like_their_lists(recs, streams, ts, preds, scores, anomalies)
    wide = rng.standard_normal((n, 4)).astype(np.float32)
    # views that are not C-contiguous, other dtypes, and shapes the template cannot hold (the per-event path)
    assert_arrays_encode_like_their_lists(recs, streams, ts, wide[:, 1:3], wide[:, 0], anomalies)
    assert_arrays_encode_like_their_lists(
        recs, streams, ts, np.asfortranarray(wide), scores.astype(np.float16), anomalies
    )
    assert_arrays_encode_like_their_lists(recs, streams, np.arange(n), wide.astype(np.float64), scores, anomalies)
    assert_arrays_encode_like_their_lists(recs, streams, ts, wide.reshape(n, 2, 2), scores, anomalies)
    assert_arrays_encode_like_their_lists(recs, streams, ts, wide[:, 0], scores, anomalies.astype(np.int8))
    big_endian = np.arange(n).astype(">i8")  # orjson refuses it: the list path
    assert_arrays_encode_like_their_lists(recs, streams, ts, wide.astype(">f4"), scores, big_endian > 5)
    assert_arrays_encode_like_their_lists(recs, streams, big_endian, wide, scores, anomalies)


def test_encode_predictions_from_arrays_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's arrays go the column path, not the per-event encoder it falls back to."""
    from stream.codec import encode as codec

    n = 5
    recs = [SimpleNamespace(topic="t", partition=0, offset=i, key=None, value=b"", timestamp=0) for i in range(n)]
    cols = {
        "streams": [f"s{i}" for i in range(n)],
        "ts": np.arange(n, dtype=np.float64),
        "predictions": np.ones((n, 2), np.float32),
        "scores": np.zeros(n, np.float32),
        "anomalies": np.zeros(n, bool),
    }
    want = encode_predictions(recs, source="x", model="m", **cols)  # type: ignore[arg-type]

    def refuse(*a: object, **k: object) -> bytes:
        raise AssertionError("per-event encoder used")

    monkeypatch.setattr(codec, "encode_prediction", refuse)
    assert encode_predictions(recs, source="x", model="m", **cols) == want  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.lists(st.floats(width=32), min_size=2, max_size=2), st.floats(width=32)), max_size=12))
def test_encode_predictions_takes_numpy_columns_fuzzed(rows: list[tuple[list[float], float]]) -> None:
    n = len(rows)
    recs = [SimpleNamespace(topic="t", partition=0, offset=i, key=None, value=b"", timestamp=0) for i in range(n)]
    preds = np.array([r[0] for r in rows], np.float32).reshape(n, 2)  # [n, 2]
    scores = np.array([r[1] for r in rows], np.float32)  # [n]
    ts = np.arange(n, dtype=np.float64) + 0.5
    assert_arrays_encode_like_their_lists(recs, [f"s{i}" for i in range(n)], ts, preds, scores, scores > 0)


def test_encode_predictions_refuses_what_encode_prediction_refuses() -> None:
    """A lone surrogate in a stream id (the stdlib JSON parser lets one through with a null key)."""
    r = rec(b"")
    with pytest.raises(TypeError) as want:
        encode_prediction(
            r, stream="a\ud800", source="s", ts=1.0, model="m", prediction=[1.0], score=0.0, anomaly=False
        )
    with pytest.raises(TypeError) as got:
        encode_predictions(
            [r, r],
            streams=["ok", "a\ud800"],
            source="s",
            ts=[1.0, 1.0],
            model="m",
            predictions=[[1.0], [1.0]],
            scores=[0.0, 0.0],
            anomalies=[False, False],
        )
    assert str(got.value) == str(want.value) and type(got.value) is type(want.value)


@pytest.mark.parametrize(
    "column",
    [
        {"predictions": [1.0, 2.0, 3.0]},  # not vectors
        {"predictions": [[1.0], 2.0, [3.0]]},
        {"predictions": [[[1.0]], [[2.0], [3.0]], []]},  # vectors of vectors
        {"predictions": [[1.0], [2.0]]},  # one short: zip stops, as per event
        {"streams": ["a", 7, "c"]},  # not strings
        {"streams": ["a,b", '"', "c"]},
        {"ts": ["1,5", "x", 3]},  # items with commas
        {"ts": [[1, 2], {"a": 1}, None]},
        {"scores": [None, True, "s"]},
        {"anomalies": [0, 1.5, None]},
    ],
)
def test_encode_predictions_other_column_types_match_encode_prediction(column: dict[str, list[object]]) -> None:
    cols: dict[str, list[object]] = {
        "streams": ["a", "b", "c"],
        "ts": [1.0, 2.0, 3.0],
        "predictions": [[1.0], [2.0], [3.0]],
        "scores": [0.1, 0.2, 0.3],
        "anomalies": [False, True, False],
        **column,
    }
    recs = [rec(b"", offset=i) for i in range(3)]
    want = [
        encode_prediction(r, stream=s, source="x", ts=t, model="m", prediction=p, score=c, anomaly=a)  # type: ignore[arg-type]
        for r, s, t, p, c, a in zip(recs, *cols.values())
    ]
    assert encode_predictions(recs, source="x", model="m", **cols) == want  # type: ignore[arg-type]


@pytest.mark.parametrize("source", sorted(FAST_SOURCES))
def test_one_doubtful_record_in_a_clean_batch(source: str) -> None:
    """Every case alone, and as the one doubtful record among clean ones (before and after them)."""
    n = FAST_SOURCES[source]
    body = FEATURE_CASES[source][0]
    clean = [(raw(f'"stream": "c{i}", "ts": {NOW - i}, {body}'), f"c{i}".encode()) for i in range(3)]
    clean.append((raw(f'"stream": "c9", "ts": {NOW - 9}, {body}'), None))  # keyless among keyed
    for case in common_cases(body):
        both(source, [case], n)
        both(source, [*clean, case], n)
        both(source, [case, *clean], n)
    assert not both(source, clean, n).errors


def test_alert_says_which_way_the_value_went() -> None:
    r = rec(b"{}", key=b"s1")
    kw = {"stream": "s1", "source": "sensors", "ts": 1.0, "model": "m", "state": "open", "score": 0.9, "threshold": 0.5}
    up = orjson.loads(encode_alert(r, **kw, expected=[1.0], actual=[4.5]))  # type: ignore[arg-type]
    assert up["direction"] == "above" and "3.5 above the forecast" in up["explanation"]
    down = orjson.loads(encode_alert(r, **kw, expected=[1.0], actual=[-2.0]))  # type: ignore[arg-type]
    assert down["direction"] == "below" and "3 below the forecast" in down["explanation"]
    # multivariate: the channel that drove it; without one there is no common unit to compare in
    mv = encode_alert(r, **kw, expected=[1.0, 2.0], actual=[9.0, 1.0], extra={"channel_index": 1})  # type: ignore[arg-type]
    assert orjson.loads(mv)["direction"] == "below"
    far = encode_alert(r, **kw, expected=[1.0, 2.0, 0.0], actual=[math.nan, 1.0, 5.0])  # type: ignore[arg-type]
    assert "direction" not in orjson.loads(far)
    # not comparable (ticks: forecasts of returns vs the raw tick), or no gap: no direction at all
    ticks = orjson.loads(encode_alert(r, **kw, expected=[0.0, 0.1], actual=[100.0, 3.0, 99.9, 100.1]))  # type: ignore[arg-type]
    assert "direction" not in ticks and "forecast" not in ticks["explanation"]
    assert "direction" not in orjson.loads(encode_alert(r, **kw, expected=[1.0], actual=[1.0]))  # type: ignore[arg-type]
    rule = encode_alert(r, **kw, expected=[0.02], actual=[0.05], kind="jump")  # type: ignore[arg-type]
    assert "direction" not in orjson.loads(rule)  # a rule's limit is not a forecast
