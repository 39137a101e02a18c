"""Reorder buffer (``SEQSTREAM_REORDER_GRACE_S``) without a broker: ordering, lateness, durability."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
import torch

from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig
from models.errors import ConfigError
from stream.metrics import Metrics
from stream.pipeline import BatchResult, SourcePipeline
from stream.settings import Settings
from stream.state import PartitionProgress, StateManager, decode_chunk, encode_snapshot, join_chunks, join_held

TOPIC = "sensor-readings"


def _runner() -> Runner:
    torch.manual_seed(0)
    return Runner(RecurrentForecaster(NetConfig(hidden_size=8)), ScoringConfig(warmup=3), device="cpu")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _pipe(clock: Clock | None = None, **kw: Any) -> SourcePipeline:
    p = SourcePipeline("sensors", _runner(), Settings(**kw), Metrics())
    p.clock = clock or Clock()
    return p


def _rec(stream: str, ts: float, v: float, offset: int, partition: int = 0) -> SimpleNamespace:
    value = orjson.dumps({"stream": stream, "ts": ts, "values": [v]})
    return SimpleNamespace(
        topic=TOPIC, partition=partition, offset=offset, key=stream.encode(), value=value, timestamp=1_000 * offset
    )


def _shuffled(n_streams: int, rounds: int, jitter: float, seed: int = 3) -> list[SimpleNamespace]:
    """Events arrive in order of ``ts + U(0, jitter)``: each at most ``jitter`` s of event time out of order."""
    rng = np.random.default_rng(seed)
    evs = [(100.0 + k, f"s{i}", float(np.sin(k / 4 + i))) for k in range(rounds) for i in range(n_streams)]
    arrival = [t + rng.uniform(0, jitter) for t, _, _ in evs]
    recs, offsets = [], [0, 0]
    for j in np.argsort(arrival, kind="stable").tolist():
        t, sid, v = evs[j]
        part = int(sid[1:]) % 2
        recs.append(_rec(sid, t, v, offsets[part], part))
        offsets[part] += 1
    return recs


def _outputs(results: list[BatchResult | None]) -> tuple[dict[str, dict], dict[str, dict]]:
    preds: dict[str, dict] = {}
    dead: dict[str, dict] = {}
    for r in results:
        for o in r.outputs if r is not None else []:
            d = orjson.loads(o.value)
            if o.topic == "predictions":
                assert d["id"] not in preds and d["id"] not in dead, f"{d['id']} output twice"
                preds[d["id"]] = d
            elif o.topic == "dead-letter":
                assert d["id"] not in preds and d["id"] not in dead, f"{d['id']} output twice"
                dead[d["id"]] = d
    return preds, dead


def _reference(recs: list[SimpleNamespace]) -> dict[str, dict]:
    """No reorder buffer, each stream's events in event-time order: what the buffer must reproduce."""
    ref = _pipe()
    ordered = sorted(recs, key=lambda r: (orjson.loads(r.value)["ts"], r.partition, r.offset))
    preds, dead = _outputs([ref.process(ordered, now=1e9)])
    assert not dead
    return preds


def _run_batches(p: SourcePipeline, recs: list[Any], size: int) -> list[BatchResult | None]:
    out: list[BatchResult | None] = [p.process(recs[i : i + size], now=1e9) for i in range(0, len(recs), size)]
    return out


def _assert_same(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert got.keys() == want.keys()
    for k, w in want.items():
        np.testing.assert_allclose(got[k]["prediction"], w["prediction"], atol=1e-6)
        assert abs(got[k]["score"] - w["score"]) < 1e-6
        assert got[k]["ts"] == w["ts"]


def test_shuffled_within_grace_equals_sorted_input() -> None:
    recs = _shuffled(6, 60, jitter=3.0)
    assert any(orjson.loads(a.value)["ts"] > orjson.loads(b.value)["ts"] for a, b in itertools.pairwise(recs))
    want = _reference(recs)
    clock = Clock()
    p = _pipe(clock, reorder_grace_s=4.0, reorder_max_hold_s=30.0)
    results = _run_batches(p, recs, 7)
    assert p.n_held > 0  # the newest events of every stream wait for their watermark
    assert not p.held_due()
    clock.t += 31.0  # a quiet end: processing time releases the rest
    assert p.held_due()
    results.append(p.release_due())
    assert p.n_held == 0 and not p.held_due()
    preds, dead = _outputs(results)
    assert not dead
    _assert_same(preds, want)
    # every input has exactly one output, whatever the batch boundaries
    one = _pipe(reorder_grace_s=4.0)
    once = _outputs([one.process(recs, now=1e9), one.release_due(now=float("inf"))])[0]
    assert once == preds


def test_without_buffer_the_same_input_is_out_of_order() -> None:
    recs = _shuffled(6, 60, jitter=3.0)
    preds, dead = _outputs([_pipe().process(recs, now=1e9)])
    assert len(preds) + len(dead) == len(recs)
    assert dead and {d["reason"] for d in dead.values()} == {"out_of_order"}


def test_too_late_is_dead_letter_late_and_every_input_has_one_output() -> None:
    p = _pipe(reorder_grace_s=5.0)
    recs = [_rec("a", 100.0 + k, 0.1 * k, k) for k in range(20)]  # newest 119: watermark 114
    recs += [_rec("a", 113.0, 9.0, 20), _rec("a", 116.5, 1.0, 21), _rec("b", 5.0, 1.0, 22)]
    results = [p.process(recs[:20], now=1e9), p.process(recs[20:], now=1e9), p.release_due(now=float("inf"))]
    preds, dead = _outputs(results)
    assert {k: d["reason"] for k, d in dead.items()} == {f"{TOPIC}:0:20": "late"}
    assert "SEQSTREAM_REORDER_GRACE_S" in dead[f"{TOPIC}:0:20"]["message"]
    assert len(preds) + len(dead) == len(recs)
    order = [d["ts"] for d in sorted(preds.values(), key=lambda d: d["ts"]) if d["stream"] == "a"]
    assert order == sorted([100.0 + k for k in range(20)] + [116.5])
    text = p.metrics.render().decode()  # type: ignore[union-attr]
    assert 'seqstream_dead_letters_total{reason="late",source="sensors"} 1.0' in text
    assert 'seqstream_reorder_held_events{source="sensors"} 0.0' in text
    assert 'seqstream_reorder_released_events_total{cause="watermark",source="sensors"}' in text


def test_max_hold_release_raises_the_floor() -> None:
    clock = Clock()
    p = _pipe(clock, reorder_grace_s=10.0, reorder_max_hold_s=2.0)
    res = p.process([_rec("q", 50.0, 1.0, 0), _rec("q", 52.0, 1.0, 1)], now=1e9)
    assert not res.outputs and p.n_held == 2
    clock.t += 1.0
    assert p.release_due() is None
    clock.t += 1.5
    out = p.release_due()
    assert out is not None and out.n_predictions == 2 and out.n_in == 0 and out.partitions == {0}
    # the stream ran up to 52: an event at 51 can no longer be run in order
    preds, dead = _outputs([p.process([_rec("q", 51.0, 1.0, 2), _rec("q", 60.0, 1.0, 3)], now=1e9)])
    assert [d["reason"] for d in dead.values()] == ["late"] and not preds
    assert 'cause="max_hold"' in p.metrics.render().decode()  # type: ignore[union-attr]


def test_overflow_releases_oldest_arrivals_first() -> None:
    p = _pipe(reorder_grace_s=1000.0, reorder_max_held=5)
    p.process([_rec(f"o{i}", 10.0, 1.0, i) for i in range(8)], now=1e9)
    assert p.n_held == 8 and p.held_due()
    out = p.release_due()
    assert out is not None and p.n_held == 5
    assert sorted(orjson.loads(o.value)["stream"] for o in out.outputs) == ["o0", "o1", "o2"]


def test_only_the_given_partitions_are_released() -> None:
    p = _pipe(reorder_grace_s=1000.0, reorder_max_hold_s=1.0)
    p.process([_rec("a", 1.0, 1.0, 0, partition=0), _rec("b", 1.0, 1.0, 0, partition=1)], now=1e9)
    out = p.release_due(now=1e12, only={1})
    assert out is not None and [orjson.loads(o.value)["stream"] for o in out.outputs] == ["b"]
    assert p.n_held == 1 and p.held_due(now=1e12)


def test_held_events_survive_snapshot_restore_into_another_pipeline() -> None:
    recs = _shuffled(6, 40, jitter=3.0, seed=5)
    want = _reference(recs)
    a = _pipe(reorder_grace_s=4.0)
    got, dead = _outputs(_run_batches(a, recs[:131], 9))
    assert not dead
    held = {p: a.held_events(p) for p in (0, 1)}
    assert sum(map(len, held.values())) == a.n_held > 6
    assert all(e.partition == p for p, evs in held.items() for e in evs)
    b = _pipe(reorder_grace_s=4.0)  # another worker: through the changelog format
    for p in (0, 1):
        recs_p = encode_snapshot(
            f"sensors:{TOPIC}:{p}", a.partition_snapshot(p), offset=9, snap_id=1, slot=0, held=held[p], chunk_bytes=1024
        )
        assert len(recs_p) > 2  # slab chunk(s) + several chunks of held events
        chunks = [decode_chunk(v) for _, v in recs_p]
        back = join_held(chunks)
        assert [(e.stream, e.ts, e.offset, e.value) for e in back] == [
            (e.stream, e.ts, e.offset, e.value) for e in held[p]
        ]
        b.load_partition(p, join_chunks(chunks), back)
    assert b.n_held == a.n_held
    more, dead = _outputs([*_run_batches(b, recs[131:], 9), b.release_due(now=float("inf"))])
    assert not dead and not (more.keys() & got.keys())
    got.update(more)
    _assert_same(got, want)


def test_held_events_in_a_snapshot_need_the_buffer() -> None:
    a = _pipe(reorder_grace_s=4.0)
    a.process([_rec("a", 1.0, 1.0, 0)], now=1e9)
    with pytest.raises(ConfigError, match="SEQSTREAM_REORDER_GRACE_S"):
        _pipe().load_partition(0, a.partition_snapshot(0), a.held_events(0))
    a.drop_partition(0)
    assert a.n_held == 0 and not a.held_due(now=1e12)


def test_reorder_needs_state() -> None:
    with pytest.raises(ConfigError, match="SEQSTREAM_STATE_ENABLED"):
        _pipe(reorder_grace_s=1.0, state_enabled=False)


def test_default_is_off_and_adds_no_latency() -> None:
    p = _pipe()
    res = p.process([_rec("a", 1.0, 1.0, 0)], now=1e9)
    assert res.n_predictions == 1 and p.n_held == 0 and p.release_due(now=1e12) is None and p.held_events(0) == []


# -- the state manager: a release on processing time is followed by a snapshot (fence) ----------
class FakeProducer:
    """Enough of AIOKafkaProducer for BulkProducer and the changelog writer."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, bytes | None, bytes]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def create_batch(self) -> Any:
        recs: list[tuple[bytes | None, bytes]] = []
        return SimpleNamespace(
            recs=recs,
            append=lambda key, value, timestamp: recs.append((key, value)) or True,
            record_count=lambda: len(recs),
        )

    async def send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        self.sent.extend((topic, partition, k, v) for k, v in batch.recs)
        f: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        f.set_result(None)
        return f


def test_state_manager_snapshots_right_after_a_processing_time_release() -> None:
    from aiokafka import TopicPartition

    async def run() -> None:
        clock = Clock()
        settings = Settings(reorder_grace_s=10.0, reorder_max_hold_s=2.0, snapshot_interval_s=3600.0)
        pipe = SourcePipeline("sensors", _runner(), settings, Metrics())
        pipe.clock = clock
        sm = StateManager(settings, {"sensors": pipe}, Metrics())
        from stream.engine import BulkProducer

        prod = FakeProducer()
        sm.producer, sm.bulk = prod, BulkProducer(prod)  # what start() sets up, without a broker
        tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
        sm.parts = {
            tp0: PartitionProgress("sensors", 0, 0),
            tp1: PartitionProgress("sensors", 0, 5),  # partition 1 still replays
        }
        sm._stagger(list(sm.parts))  # what an assignment sets up: the first periodic snapshots an interval away
        recs = [_rec("a", 50.0, 1.0, 0, 0), _rec("a", 51.0, 1.0, 1, 0), _rec("b", 50.0, 1.0, 0, 1)]
        pipe.process(recs, now=1e9)
        sm.advanced({tp0: recs[:2], tp1: recs[2:]})
        await sm.maybe_snapshot()
        assert not prod.sent and not sm.snapshot_due()
        clock.t += 3.0
        assert sm.snapshot_due()  # the engine's idle loop calls snapshot() on this
        await sm.snapshot(list(sm.parts))
        preds = [orjson.loads(v) for t, _, _, v in prod.sent if t == "predictions"]
        assert [d["stream"] for d in preds] == ["a", "a"]  # b's partition replays: its outputs exist
        state = [decode_chunk(v) for t, _, _, v in prod.sent if t == settings.topic_state]
        assert {c.key for c in state} == {f"sensors:{TOPIC}:0", f"sensors:{TOPIC}:1"}
        assert [len(c.held) for c in state if c.key.endswith(":1")] == [0, 1]  # b is still held, in the snapshot
        assert sm.parts[tp0].snap_offset == 1 and not sm.parts[tp0].dirty
        assert pipe.n_held == 1

    asyncio.run(run())
