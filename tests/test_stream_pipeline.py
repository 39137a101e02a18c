"""Pipeline (no broker): every input ends as one prediction or one dead letter; metrics; control."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig
from stream.app import handle_control
from stream.engine import BatchEngine
from stream.metrics import Metrics, observe_many
from stream.pipeline import SourcePipeline
from stream.settings import Settings


def _pipe() -> tuple[SourcePipeline, Metrics]:
    runner = Runner(RecurrentForecaster(NetConfig(hidden_size=8)), ScoringConfig(warmup=0), device="cpu")
    m = Metrics()
    return SourcePipeline("sensors", runner, Settings(), m), m


def _rec(offset: int, value: bytes, key: bytes = b"a") -> SimpleNamespace:
    return SimpleNamespace(topic="sensor-readings", partition=1, offset=offset, key=key, value=value, timestamp=5000)


def test_every_input_gets_exactly_one_primary_output() -> None:
    pipe, m = _pipe()
    recs = [_rec(i, orjson.dumps({"stream": "a", "ts": 100.0 + i, "values": [float(i)]})) for i in range(5)]
    recs.append(_rec(5, b"oops"))
    recs.append(_rec(6, orjson.dumps({"stream": "a", "ts": 1.0, "values": [1.0]})))  # out of order
    res = pipe.process(recs, now=200.0)
    topics = [o.topic for o in res.outputs]
    assert topics.count("predictions") == 5 and topics.count("dead-letter") == 2
    ids = sorted(orjson.loads(o.value)["id"] for o in res.outputs if o.topic != "anomaly-alerts")
    assert ids == [f"sensor-readings:1:{i}" for i in range(7)]
    reasons = sorted(orjson.loads(o.value)["reason"] for o in res.outputs if o.topic == "dead-letter")
    assert reasons == ["not_json", "out_of_order"]
    text = m.render().decode()
    assert 'seqstream_events_in_total{source="sensors"} 7.0' in text
    assert 'seqstream_dead_letters_total{reason="out_of_order",source="sensors"} 1.0' in text
    assert 'seqstream_active_streams{source="sensors"} 1.0' in text


def test_slab_gauges_are_set_when_scraped_and_forget_a_pipeline_that_is_gone() -> None:
    """The slab's gauges describe a state: a scrape (``render``) sets them, not every micro-batch."""
    import gc

    pipe, m = _pipe()
    recs = [
        _rec(i, orjson.dumps({"stream": f"s{i}", "ts": 100.0, "values": [1.0]}), key=f"s{i}".encode()) for i in range(3)
    ]
    pipe.process(recs, now=200.0)
    gauge = m.of(m.active_streams, "sensors")
    assert gauge._value.get() == 0.0  # not set by the batch
    assert 'seqstream_active_streams{source="sensors"} 3.0' in m.render().decode()
    assert gauge._value.get() == 3.0
    del pipe
    gc.collect()
    m.render()  # the hook of a pipeline that is gone is dropped, not called
    assert m._scrape_hooks == []


def test_internal_error_dead_letters_the_batch() -> None:
    pipe, m = _pipe()
    engine = BatchEngine(Settings(), {"sensors": pipe}, m)

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("bug")

    pipe.process = boom  # type: ignore[method-assign]
    res = engine._run_pipeline("sensors", [_rec(0, b"{}"), _rec(1, b"{}")])
    assert [orjson.loads(o.value)["reason"] for o in res.outputs] == ["internal_error"] * 2


def test_observe_many_matches_observe() -> None:
    a, b = Metrics(), Metrics()
    values = [0.0005, 0.003, 0.05, 0.05, 2.0, 100.0]
    import numpy as np

    observe_many(a.e2e_latency.labels(source="x"), np.asarray(values))
    for v in values:
        b.e2e_latency.labels(source="x").observe(v)
    pick = [line for line in a.render().decode().splitlines() if "latency_seconds_bucket" in line or "_sum" in line]
    assert pick == [line for line in b.render().decode().splitlines() if line in pick]
    assert len(pick) > 5


def test_control_commands() -> None:
    pipe, _ = _pipe()
    pipe.process([_rec(0, orjson.dumps({"stream": "a", "ts": 1.0, "values": [1.0]}))], now=2.0)
    reg = {"engine": SimpleNamespace(pipelines={"sensors": pipe})}
    assert handle_control(b'{"command": "ping"}', reg) == "pong"
    assert handle_control(b'{"command": "evict", "source": "sensors", "streams": ["a"]}', reg) == "evicted 1"
    assert len(pipe.runner.slab) == 0
    assert handle_control(b"garbage", reg).startswith("error")
    assert handle_control(b'{"command": "nope"}', reg).startswith("error")


@pytest.mark.parametrize("freeze", [True, False])
def test_engine_freezes_the_heap_after_its_first_batch(freeze: bool) -> None:
    import asyncio
    import gc

    pipe, m = _pipe()
    engine = BatchEngine(Settings(gc_freeze=freeze), {"sensors": pipe}, m)
    engine._last_lag = float("inf")  # no lag/broker checks: there is no consumer here
    fetched: list[int] = []

    async def fetch() -> dict[str, list[int]]:
        fetched.append(1)
        if len(fetched) == 2:
            engine._stopping.set()
        return {"tp": [1]}

    async def process(data: object) -> list[object]:
        return []

    engine._fetch = fetch  # type: ignore[method-assign]
    engine.process = process  # type: ignore[method-assign]
    before = gc.get_freeze_count()
    try:
        asyncio.run(engine.run())
        assert engine._frozen is freeze
        assert (gc.get_freeze_count() > before) is freeze
        asyncio.run(engine.stop())  # no clients to stop; the heap is unfrozen again
        assert not engine._frozen and gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()  # the rest of the test session collects as before


def test_metrics_children_are_looked_up_once_and_count() -> None:
    from stream.metrics import Metrics

    m = Metrics()
    child = m.of(m.events_out, "sensors", "predictions")
    assert (
        m.of(m.events_out, "sensors", "predictions")
        is child
        is m.events_out.labels(source="sensors", topic="predictions")
    )
    child.inc(3)
    assert b'seqstream_events_out_total{source="sensors",topic="predictions"} 3.0' in m.render()
