"""Durable state without a broker: changelog format, partition snapshots, parking, late/gap rules."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import orjson
import pytest
import torch

from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig
from models.state import SlabSnapshot
from stream.pipeline import SourcePipeline
from stream.settings import Settings
from stream.state import decode_chunk, encode_snapshot, join_chunks


def _snap(n: int, h: int = 8) -> SlabSnapshot:
    g = torch.Generator().manual_seed(n)
    return SlabSnapshot(
        tuple(f"s-{i}-ü" for i in range(n)),
        torch.randn(n, 2, 1, h, generator=g),
        torch.randn(n, 10, generator=g),
        np.arange(n, dtype=np.int64),
        np.linspace(0, 1, n),
    )


@pytest.mark.parametrize("n", [0, 1, 333])
def test_snapshot_roundtrip_chunked(n: int) -> None:
    snap = _snap(n)
    recs = encode_snapshot("sensors:t:3", snap, offset=99, snap_id=7, slot=1, chunk_bytes=4096)
    assert len(recs) == max(1, -(-n // max(1, 4096 // (2 * 8 * 4 + 40 + 40))))
    assert all(len(v) <= 4096 + 2000 for _, v in recs)
    chunks = [decode_chunk(v) for _, v in recs]
    assert {c.key for c in chunks} == {"sensors:t:3"} and {c.offset for c in chunks} == {99}
    assert recs[0][0] == b"sensors:t:3#1.0"
    back = join_chunks(reversed(chunks))
    assert back.stream_ids == snap.stream_ids
    assert torch.equal(back.hidden, snap.hidden) and torch.equal(back.aux, snap.aux)
    assert (back.steps == snap.steps).all() and (back.last_ts == snap.last_ts).all()


def test_fp16_and_tamper() -> None:
    snap = _snap(5)
    (_, v), *_ = encode_snapshot("k", snap, offset=1, snap_id=1, slot=0, fp16=True)
    back = decode_chunk(v).snap
    assert torch.allclose(back.hidden, snap.hidden, atol=2e-3)
    bad = bytearray(v)
    bad[-3] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        decode_chunk(bytes(bad))
    with pytest.raises(ValueError, match="not a seqstream"):
        decode_chunk(b"garbage")


def _runner() -> Runner:
    torch.manual_seed(0)
    return Runner(RecurrentForecaster(NetConfig(hidden_size=8)), ScoringConfig(warmup=3), device="cpu")


def _rec(stream: str, ts: float, v: float, offset: int, partition: int = 0) -> SimpleNamespace:
    value = orjson.dumps({"stream": stream, "ts": ts, "values": [v]})
    return SimpleNamespace(
        topic="sensor-readings", partition=partition, offset=offset, key=stream.encode(), value=value, timestamp=0
    )


def _preds(res) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    out = {}
    for o in res.outputs:
        d = orjson.loads(o.value)
        out[d["id"]] = d
    return out


def _events(n_streams: int, rounds: int, seed: int = 1) -> list[SimpleNamespace]:
    rng = np.random.default_rng(seed)
    recs = []
    for k in range(rounds):
        for i in rng.permutation(n_streams):
            recs.append(_rec(f"s{i}", 100.0 + k, float(np.sin(k / 3 + i)), len(recs), partition=int(i % 2)))
    return recs


def test_partition_snapshot_restore_equals_uninterrupted() -> None:
    recs = _events(6, 30)
    ref = SourcePipeline("sensors", _runner(), Settings())
    want = _preds(ref.process(recs, now=1e9))
    a = SourcePipeline("sensors", _runner(), Settings())
    got = _preds(a.process(recs[:90], now=1e9))
    snaps = {p: a.partition_snapshot(p) for p in (0, 1)}
    b = SourcePipeline("sensors", _runner(), Settings())  # a different worker takes over
    for p, snap in snaps.items():
        b.load_partition(p, snap)
    got.update(_preds(b.process(recs[90:], now=1e9)))
    assert got.keys() == want.keys()
    for k, w in want.items():
        np.testing.assert_allclose(got[k]["prediction"], w["prediction"], atol=1e-6)
        assert abs(got[k]["score"] - w["score"]) < 1e-6
    b.drop_partition(0)
    assert all(b.stream_part[s] == 1 for s in b.runner.slab.stream_ids())


def test_resident_bound_parks_and_restores() -> None:
    recs = _events(40, 12, seed=2)
    ref = SourcePipeline("sensors", _runner(), Settings())
    want = _preds(ref.process(recs, now=1e9))
    bounded = SourcePipeline("sensors", _runner(), Settings(max_resident_streams=10))
    got = {}
    for i in range(0, len(recs), 7):  # small batches so streams come and go
        got.update(_preds(bounded.process(recs[i : i + 7], now=1e9)))
        assert len(bounded.runner.slab) <= 10
    assert bounded.parked_total > 100 and len(bounded.parked) == 40 - len(bounded.runner.slab)
    for k, w in want.items():
        np.testing.assert_allclose(got[k]["prediction"], w["prediction"], atol=1e-6)
    # parked streams are part of their partition's snapshot
    assert len(bounded.partition_snapshot(0)) + len(bounded.partition_snapshot(1)) == 40


def test_late_and_gap_reset() -> None:
    p = SourcePipeline("sensors", _runner(), Settings(late_grace_s=5.0, max_gap_s=100.0))
    p.process([_rec("a", 1000.0, 1.0, 0), _rec("a", 1001.0, 1.0, 1)], now=1e9)
    res = p.process([_rec("a", 998.0, 1.0, 2), _rec("a", 990.0, 1.0, 3)], now=1e9)
    reasons = [orjson.loads(o.value)["reason"] for o in res.outputs]
    assert reasons == ["out_of_order", "late"]
    res = p.process([_rec("a", 2000.0, 1.0, 4), _rec("a", 2001.0, 1.0, 5)], now=1e9)
    preds = [orjson.loads(o.value) for o in res.outputs if o.topic == "predictions"]
    assert [d.get("reset") for d in preds] == ["gap", None]
    assert p.runner.slab.steps[p.runner.slab.slot("a")] == 2 and p.resets == 1


def test_held_events_chunk_roundtrip_and_tamper() -> None:
    from stream.state import HeldEvent, join_held

    held = [
        HeldEvent("s-ü", 1.5 + i, "t", 3, 100 + i, 7, None if i == 0 else b"k", b"v" * i, np.full(2, i, np.float32))
        for i in range(5)
    ]
    recs = encode_snapshot("sensors:t:3", _snap(4), offset=9, snap_id=2, slot=0, held=held, chunk_bytes=1024)
    plain = encode_snapshot("sensors:t:3", _snap(4), offset=9, snap_id=2, slot=0, chunk_bytes=1024)
    assert {v[4] for _, v in plain} == {1}  # without held events: version 1, readable by older workers
    assert [v[4] for _, v in recs] == [1] * len(plain) + [2] * (len(recs) - len(plain))
    chunks = [decode_chunk(v) for _, v in recs]
    assert {c.nchunks for c in chunks} == {len(recs)} and len(recs) > len(plain)
    back = join_held(chunks)
    assert [(e.stream, e.ts, e.offset, e.key, e.value, e.x.tolist()) for e in back] == [
        (e.stream, e.ts, e.offset, e.key, e.value, e.x.tolist()) for e in held
    ]
    assert len(join_chunks(chunks)) == 4
    bad = bytearray(recs[-1][1])
    bad[-2] ^= 0x01
    with pytest.raises(ValueError, match="checksum"):
        decode_chunk(bytes(bad))


# A snapshot of one stream and one held event as a worker from before fingerprints wrote it (changelog
# versions 1 and 2, encode_snapshot of commit 7e676fe): such records must still decode.
_LEGACY = [
    "5351533101000100010000000000000006000000000000000000000002000000010000000100010002000000010000000b005ba006f9"
    "73656e736f72733a743a30010061030000000000000000000000000010400000003f000080bf00000040",
    "5351533102000100010000000000000006000000000000000100000002000000000000000100010002000000010000000b00f90607e4"
    "73656e736f72733a743a300100000001006101007400000000000014400000000000000000070000000000000008000000000000000100"
    "000001000000010061760000c03f",
]


def test_snapshot_without_fingerprint_still_decodes() -> None:
    from stream.state import join_fingerprint, join_held

    chunks = [decode_chunk(bytes.fromhex(h)) for h in _LEGACY]
    assert [c.fingerprint for c in chunks] == [None, None] and join_fingerprint(chunks) is None
    snap = join_chunks(chunks)
    assert snap.stream_ids == ("a",) and snap.hidden.tolist() == [[[[0.5, -1.0]]]] and snap.aux.tolist() == [[2.0]]
    assert snap.steps.tolist() == [3] and snap.last_ts.tolist() == [4.0] and chunks[0].offset == 6
    [e] = join_held(chunks)
    assert (e.stream, e.ts, e.offset, e.key, e.value, e.x.tolist()) == ("a", 5.0, 7, b"a", b"v", [1.5])
    # without a fingerprint the writer still writes exactly these bytes (a rollback's older workers read them)
    held = [e]
    recs = encode_snapshot("sensors:t:0", snap, offset=6, snap_id=1, slot=1, held=held)
    assert [v.hex() for _, v in recs] == _LEGACY


def test_fingerprint_round_trip_in_every_chunk() -> None:
    from stream.state import HeldEvent, join_fingerprint, join_held

    held = [HeldEvent("s", 1.0 + i, "t", 3, 50 + i, 0, b"s", b"v", np.full(1, i, np.float32)) for i in range(40)]
    recs = encode_snapshot(
        "sensors:t:3", _snap(200), offset=77, snap_id=5, slot=0, held=held, chunk_bytes=2048, fingerprint="0123abcd"
    )
    assert len(recs) > 3 and {v[4] for _, v in recs} == {3}  # format version 3 throughout
    chunks = [decode_chunk(v) for _, v in reversed(recs)]
    assert {c.fingerprint for c in chunks} == {"0123abcd"} and join_fingerprint(chunks) == "0123abcd"
    back = join_chunks(chunks)
    assert back.stream_ids == _snap(200).stream_ids and torch.equal(back.hidden, _snap(200).hidden)
    assert [e.offset for e in join_held(chunks)] == [e.offset for e in held]
    # an empty partition, and a damaged fingerprint
    [(_, v)] = encode_snapshot("k", _snap(0), offset=1, snap_id=1, slot=1, fingerprint="f" * 16)
    assert decode_chunk(v).fingerprint == "f" * 16 and len(decode_chunk(v).snap) == 0
    bad = bytearray(v)
    bad[-5] ^= 0x01
    with pytest.raises(ValueError, match="checksum"):
        decode_chunk(bytes(bad))


def test_runner_fingerprint_names_weights_and_scoring_not_placement() -> None:
    import dataclasses

    torch.manual_seed(0)
    net = RecurrentForecaster(NetConfig(hidden_size=8))
    a = Runner(net, ScoringConfig(warmup=3), device="cpu", model_id="a")
    same = Runner(net, ScoringConfig(warmup=3), device="cpu", model_id="b", capacity=8, compute_dtype="bfloat16")
    assert a.fingerprint == same.fingerprint and len(a.fingerprint) == 16  # id, capacity, precision: same state
    other = RecurrentForecaster(NetConfig(hidden_size=8))
    other.load_state_dict(net.state_dict())
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)  # same shapes, other weights
    assert Runner(other, ScoringConfig(warmup=3), device="cpu").fingerprint != a.fingerprint
    sc = dataclasses.replace(ScoringConfig(warmup=3), open_threshold=0.99)
    assert Runner(net, sc, device="cpu").fingerprint != a.fingerprint  # the scorer's alert state depends on it


def test_vad_fingerprint_names_weights_and_vad_settings() -> None:
    from models.silero import SileroVAD, VadRunner

    torch.manual_seed(0)
    vad = SileroVAD()
    a = VadRunner(vad, threshold=0.5).fingerprint
    assert VadRunner(vad, threshold=0.5, model_id="x").fingerprint == a
    assert VadRunner(vad, threshold=0.6).fingerprint != a
    assert VadRunner(vad, threshold=0.5, min_silence_ms=300).fingerprint != a
    assert VadRunner(SileroVAD(), threshold=0.5).fingerprint != a  # other weights
