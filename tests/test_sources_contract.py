"""The contract every source of ``stream/sources/`` passes (river-style: one suite, each source).

- what its simulator writes, its decoders read back (ids, times, values), with no dead letter;
- the fast decoder (msgspec + arrays) and the careful one agree on every record, good or bad:
  the same rows, values, reasons and messages;
- each broken field of its schema becomes the dead-letter reason that says what is wrong;
- its decoded rows fit its model: the width, and one step of the model it is served with.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import msgspec
import numpy as np
import orjson
import pytest

from stream.codec import REASONS, Decoded, decode_batch
from stream.codec.decode import _decode_careful
from stream.sources import SOURCES, Source
from stream.sources.simulator import Simulator

NAMES = sorted(SOURCES)
NOW = 1_800_000_000.0
T0 = 1_700_000_000.0


def records(values: list[tuple[bytes | None, bytes | None]]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(topic="t", partition=0, offset=i, key=k, value=v, timestamp=0)
        for i, (v, k) in enumerate(values)
    ]


def simulated(name: str, rounds: int = 6, streams: int = 4) -> list[Any]:
    sim = Simulator(name, streams, seed=3)
    sim.inject(1, 1, 3)
    return [e for k in range(rounds) for e in sim.round(T0 + k * 0.5)]


def assert_same(a: Decoded, b: Decoded) -> None:
    assert a.index.tolist() == b.index.tolist()
    assert a.stream_ids == b.stream_ids
    assert a.ts.tobytes() == b.ts.tobytes()
    assert a.x.shape == b.x.shape and a.x.dtype == b.x.dtype == np.float32
    assert np.array_equal(a.x, b.x, equal_nan=True)
    assert a.errors == b.errors  # positions, reasons and messages


def both(src: Source, recs: list[SimpleNamespace], **kw: Any) -> Decoded:
    """Decode with the fast path and the careful one; they must agree exactly."""
    args = {"n_features": src.n_features, "now": NOW, **kw}
    fast = decode_batch(src.wire, recs, **args)
    assert_same(fast, _decode_careful(src.wire, recs, **args))
    assert all(reason in REASONS for _, reason, _ in fast.errors)
    return fast


def test_the_registry_finds_every_source_file_and_each_has_its_own_names() -> None:
    assert {"sensors", "speech", "ticks", "audio", "machines"} <= set(SOURCES)
    for what, values in (
        ("topic", [s.topic for s in SOURCES.values()]),
        ("stream prefix", [s.simulation.prefix for s in SOURCES.values()]),
    ):
        assert len(set(values)) == len(values), f"two sources share a {what}"
    for name, src in SOURCES.items():
        assert src.name == name  # the file's name
        assert src.n_features > 0
        assert {"stream", "ts"} <= set(src.wire.schema.__struct_fields__), f"{name}: records name stream and time"
        if src.load_runner is None:  # a forecaster: its bundled checkpoint is there
            assert src.default_checkpoint().is_file(), f"{name}: {src.default_checkpoint()} is missing"


@pytest.mark.parametrize("name", NAMES)
def test_what_the_simulator_writes_the_decoders_read_back(name: str) -> None:
    src = SOURCES[name]
    events = simulated(name)
    d = both(src, records([(e.value(), e.key()) for e in events]))
    assert d.errors == [], d.errors[:3]
    assert d.stream_ids == [e.stream for e in events]
    assert d.ts.tolist() == [e.ts for e in events]
    assert d.x.shape == (len(events), src.n_features)
    for row, e in zip(d.x, events):  # each row is the careful reading of the JSON the simulator wrote
        expect = np.asarray(src.wire.careful(orjson.loads(e.value()), src.n_features), np.float32)
        assert np.array_equal(row, expect, equal_nan=True)


def _broken(src: Source, payload: dict[str, Any]) -> list[tuple[bytes | None, str]]:
    """Values that break one thing of a good payload, each with the reason it must get."""
    cases: list[tuple[bytes | None, str]] = [
        (None, "not_json"),
        (b"{", "not_json"),
        (b"[1, 2]", "bad_shape"),
        (orjson.dumps({**payload, "stream": ""}), "bad_shape"),
        (orjson.dumps({**payload, "ts": NOW + 3600}), "future_timestamp"),
        (orjson.dumps({**payload, "ts": "yesterday"}), "bad_shape"),
        (orjson.dumps({**payload, "pad": "x" * 70_000}), "too_large"),
    ]
    for field in msgspec.structs.fields(src.wire.schema):
        rest = {k: v for k, v in payload.items() if k != field.name}
        if field.required:
            cases.append((orjson.dumps(rest), "missing_field"))
        if field.name != "stream":
            cases.append((orjson.dumps({**payload, field.name: {"a": 1}}), "bad_shape"))
        value = payload.get(field.name)
        if isinstance(value, float) and field.name != "ts":
            text = orjson.dumps({**payload, field.name: 0.5}).replace(b"0.5", b"NaN")
            cases.append((text, "non_finite"))
        if isinstance(value, list) and value:
            cases.append((orjson.dumps({**payload, field.name: value + value}), "wrong_length"))
        if field.type is bytes:  # base64 on the wire
            cases.append((orjson.dumps({**payload, field.name: "AAAAAAAA"}), "wrong_length"))
            cases.append((orjson.dumps({**payload, field.name: "!!not base64!!"}), "bad_base64"))
    return cases


@pytest.mark.parametrize("name", NAMES)
def test_each_broken_field_gets_its_reason_from_both_decoders(name: str) -> None:
    src = SOURCES[name]
    good = simulated(name, rounds=1, streams=1)[0]
    payload = orjson.loads(good.value())
    cases = _broken(src, payload)
    values = [(v, good.key()) for v, _ in cases]
    values.append((good.value(), b"someone-else"))  # the key names another stream
    values.append((good.value(), b"\xff\xfe"))  # a key that is not UTF-8
    want = [r for _, r in cases] + ["key_mismatch", "key_mismatch"]
    d = both(SOURCES[name], records(values), max_payload_bytes=65536)
    got = {pos: reason for pos, reason, _ in d.errors}
    assert [got.get(i) for i in range(len(values))] == want
    assert all(msg for _, _, msg in d.errors), "every dead letter says what is wrong"


@pytest.mark.parametrize("name", NAMES)
def test_good_and_bad_records_mixed_decode_the_same_on_both_paths(name: str) -> None:
    src = SOURCES[name]
    events = simulated(name, rounds=3)
    rng = np.random.default_rng(0)
    values: list[tuple[bytes | None, bytes | None]] = []
    for e in events:
        v = e.value()
        if rng.random() < 0.3:  # a byte flipped somewhere: valid or not, both paths must agree
            i = int(rng.integers(0, len(v)))
            v = v[:i] + bytes([v[i] ^ 0x20]) + v[i + 1 :]
        values.append((v, e.key()))
    both(src, records(values))


@pytest.mark.parametrize("name", NAMES)
def test_decoded_rows_fit_the_model_the_source_is_served_with(name: str) -> None:
    from models.types import Batch
    from stream.pipeline import build_runner
    from stream.settings import Settings

    src = SOURCES[name]
    events = simulated(name, rounds=2)
    d = both(src, records([(e.value(), e.key()) for e in events]))
    runner = build_runner(Settings(sources=(name,)), name)
    assert runner.n_features == src.n_features
    res = runner.process(Batch(d.stream_ids, d.ts, d.x))
    n = len(events)
    assert res.accepted.shape == (n,) and res.score.shape == (n,) and res.anomaly.shape == (n,)
    assert res.prediction.shape[0] == n and res.prediction.ndim == 2
    assert all(math.isfinite(s) for s in res.score[res.accepted].tolist())
