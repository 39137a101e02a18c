"""Codec: every bad-input kind becomes a reason; good records become arrays; encoders round-trip."""

from __future__ import annotations

import base64
import json
import math
from types import SimpleNamespace

import numpy as np
import orjson
import pytest

from stream.codec import REASONS, decode_batch, encode_alert, encode_dead, encode_prediction

NOW = 1_700_000_000.0


def rec(value: bytes | None, key: bytes | None = b"s1", offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(topic="t", partition=3, offset=offset, key=key, value=value, timestamp=1234)


def one(source: str, value: bytes | None, key: bytes | None = b"s1", n: int = 1) -> tuple[str, str] | None:
    d = decode_batch(source, [rec(value, key)], n_features=n, now=NOW, max_future_s=60, max_payload_bytes=2048)
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
    d = decode_batch("ticks", [rec(j(tick))], n_features=2, now=NOW)
    np.testing.assert_allclose(d.x[0], [math.log(101.5), math.log1p(3)], rtol=1e-6)
    raw = decode_batch("ticks", [rec(j(tick))], n_features=4, now=NOW)  # a ticks model: raw, missing bid NaN
    assert raw.errors == [] and raw.x[0, :2].tolist() == [101.5, 3.0] and np.isnan(raw.x[0, 2])
    assert raw.x[0, 3] == pytest.approx(101.6)
    mv = decode_batch("machines", [rec(j({**GOOD, "values": [1.0, None, 3]}))], n_features=3, now=NOW)
    assert mv.errors == [] and np.isnan(mv.x[0, 1]) and mv.x[0, [0, 2]].tolist() == [1.0, 3.0]
    iso = decode_batch("sensors", [rec(j({**GOOD, "ts": "2023-11-14T22:13:20"}))], n_features=1, now=NOW)
    assert iso.ts[0] == pytest.approx(1_700_000_000.0)  # naive ISO-8601 means UTC


def test_mixed_batch_keeps_positions_and_order() -> None:
    recs = [rec(j({**GOOD, "values": [float(i)]}), offset=i) if i % 3 else rec(b"bad", offset=i) for i in range(10)]
    d = decode_batch("sensors", recs, n_features=1, now=NOW)
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
