"""SEQSTREAM_ON_MODEL_CHANGE: what a restore does with a snapshot that another model built (no broker).

The changelog is stood in for by ``StateManager._read_latest`` and the consumer by a recorder of
seeks; tests/integration/test_model_upgrade.py runs the same policies on a real broker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import torch

from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig
from models.errors import ModelChangeError
from models.state import SlabSnapshot
from stream.metrics import Metrics
from stream.pipeline import SourcePipeline
from stream.settings import Settings
from stream.state import HeldEvent, StateManager
from stream.state.restore import RestoredSnapshot

TOPIC = "sensor-readings"


class Consumer:
    """What the manager calls on the consumer during an assignment."""

    def __init__(self, committed: int | None, begin: int) -> None:
        self.c, self.begin = committed, begin
        self.seeks: dict[Any, int] = {}

    async def committed(self, tp: Any) -> int | None:
        return self.c

    async def beginning_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return {tp: self.begin for tp in tps}

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks[tp] = offset


def _restore(
    policy: str, fingerprint: str | None, committed: int | None = 120, begin: int = 0, hidden: int = 4, **kw: Any
) -> tuple[StateManager, SourcePipeline, Consumer, Metrics]:
    from aiokafka import TopicPartition

    torch.manual_seed(0)
    runner = Runner(RecurrentForecaster(NetConfig(hidden_size=4)), ScoringConfig(warmup=2), device="cpu")
    settings = Settings(on_model_change=policy, reorder_grace_s=30.0, **kw)
    metrics = Metrics()
    pipe = SourcePipeline("sensors", runner, settings, metrics)
    sm = StateManager(settings, {"sensors": pipe}, metrics)
    snap = SlabSnapshot(
        ("a", "b"),
        torch.ones(2, 1, 1, hidden),
        runner.features.init_row().repeat(2, 1),
        np.array([5, 5]),
        np.array([9.0, 9.0]),
    )
    held = [
        HeldEvent("a", 10.0 + i, TOPIC, 0, off, 0, b"a", b"{}", np.zeros(1, np.float32))
        for i, off in enumerate((40, 99))
    ]
    got = RestoredSnapshot(99, 1, snap, held, pipe.fingerprint if fingerprint == "same" else fingerprint)

    async def latest(tps: list[Any]) -> dict[Any, RestoredSnapshot]:
        return {tp: got for tp in tps}

    sm._read_latest = latest  # type: ignore[method-assign]
    consumer = Consumer(committed, begin)
    asyncio.run(sm.on_assigned([TopicPartition(TOPIC, 0)], consumer))
    return sm, pipe, consumer, metrics


def _count(metrics: Metrics, action: str) -> float:
    return float(metrics.state_model_change.labels(source="sensors", action=action)._value.get())


@pytest.mark.parametrize("fingerprint", ["same", None])
def test_same_model_or_no_fingerprint_restores_the_snapshot(fingerprint: str | None) -> None:
    sm, pipe, consumer, m = _restore("refuse", fingerprint)  # "same": the runner's own
    [(tp, st)] = sm.parts.items()
    assert sm.fatal is None and consumer.seeks[tp] == 100 and (st.next_offset, st.live_from) == (100, 120)
    assert set(pipe.runner.slab.stream_ids()) == {"a", "b"} and pipe.n_held == 2
    assert sum(_count(m, a) for a in ("rewarm", "reset", "refuse")) == 0


def test_reset_starts_fresh_at_the_snapshot_offset_and_keeps_held_events() -> None:
    sm, pipe, consumer, m = _restore("reset", "another-model")
    [(tp, st)] = sm.parts.items()
    assert consumer.seeks[tp] == 100 and (st.next_offset, st.live_from, st.snap_offset) == (100, 120, -1)
    assert len(pipe.runner.slab) == 0 and pipe.n_held == 2  # fresh state; accepted events still get outputs
    assert _count(m, "reset") == 1 and _count(m, "rewarm") == 0 and sm.fatal is None


def test_rewarm_replays_bounded_input_for_state_only() -> None:
    sm, pipe, consumer, m = _restore("rewarm", "another-model", begin=10, rewarm_max_records=50)
    [(tp, st)] = sm.parts.items()
    # offsets 50..119 run through the new model for state only, live (with outputs) from the committed 120
    assert consumer.seeks[tp] == 50 and (st.next_offset, st.live_from, st.snap_offset) == (50, 120, -1)
    assert len(pipe.runner.slab) == 0 and [e.offset for e in pipe.reorder.events_of(0, pipe.stream_part)] == [40]
    assert _count(m, "rewarm") == 1 and _count(m, "reset") == 0
    sm, pipe, consumer, m = _restore("rewarm", "another-model", begin=10, rewarm_max_records=0)
    assert (
        list(consumer.seeks.values()) == [10] and pipe.n_held == 0
    )  # unbounded: all retained (held again by the replay)


def test_rewarm_without_retained_input_resets() -> None:
    sm, pipe, consumer, m = _restore("rewarm", "another-model", begin=100)  # retention deleted offsets < 100
    [(tp, st)] = sm.parts.items()
    assert consumer.seeks[tp] == 100 and st.next_offset == 100 and len(pipe.runner.slab) == 0 and pipe.n_held == 2
    assert _count(m, "reset") == 1 and _count(m, "rewarm") == 0


def test_refuse_restores_nothing_and_keeps_one_line_for_the_worker() -> None:
    sm, pipe, consumer, m = _restore("refuse", "0123456789abcdef")
    assert not sm.parts and not consumer.seeks and len(pipe.runner.slab) == 0
    assert isinstance(sm.fatal, ModelChangeError) and _count(m, "refuse") == 1
    msg = str(sm.fatal)
    assert "\n" not in msg and "0123456789abcdef" in msg and pipe.fingerprint in msg
    assert f"{TOPIC}:0" in msg and "SEQSTREAM_ON_MODEL_CHANGE" in msg and "blue/green" in msg


def test_a_snapshot_without_fingerprint_of_another_layout_is_another_models() -> None:
    """Written before fingerprints by a model of other sizes: never loaded (it would not fit the slab)."""
    sm, pipe, consumer, m = _restore("reset", None, hidden=8)
    [tp] = sm.parts
    assert consumer.seeks[tp] == 100 and len(pipe.runner.slab) == 0 and _count(m, "reset") == 1
