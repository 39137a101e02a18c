"""``BatchEngine.settle``: acknowledged input offsets are committed in order, at most every
``commit_interval_s``, and all of them at once by ``settle(0)`` (a stop, a rebalance, an idle fetch, a
snapshot); a batch's latency ends at its last ack."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from stream.engine import BatchEngine, _InFlight
from stream.metrics import Metrics
from stream.pipeline import BatchResult
from stream.settings import Settings


class _Consumer:
    def __init__(self) -> None:
        self.commits: list[dict[str, int]] = []

    async def commit(self, offsets: dict[str, int]) -> None:
        self.commits.append(dict(offsets))


def _engine(interval: float) -> tuple[BatchEngine, _Consumer]:
    engine = BatchEngine(Settings(commit_interval_s=interval), {}, Metrics())
    consumer = _Consumer()
    engine.consumer = consumer
    return engine, consumer


def _batch(offsets: dict[str, int]) -> _InFlight:
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return _InFlight([done], offsets, [])


async def test_offsets_are_committed_at_most_every_interval_and_flushed_by_settle_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, consumer = _engine(0.25)
    now = [100.0]
    monkeypatch.setattr("stream.engine.time.monotonic", lambda: now[0])
    engine._inflight.append(_batch({"a": 10}))
    await engine.settle(1)  # the first acknowledged batch: committed (nothing committed for > interval)
    await asyncio.sleep(0)
    assert consumer.commits == [{"a": 10}]
    for k, off in enumerate((20, 30, 40)):
        now[0] += 0.05
        engine._inflight.append(_batch({"a": off, "b": k}))
        await engine.settle(1)
    await asyncio.sleep(0)
    assert consumer.commits == [{"a": 10}]  # 0.15 s later: held
    now[0] += 0.2
    engine._inflight.append(_batch({"a": 50}))
    await engine.settle(1)
    await asyncio.sleep(0)
    assert consumer.commits == [{"a": 10}, {"a": 50, "b": 2}]  # the newest offset per partition
    engine._inflight.append(_batch({"b": 7}))
    await engine.settle(0)  # flush: committed at once, and awaited
    assert consumer.commits[-1] == {"b": 7} and engine._commit_task is None


async def test_interval_zero_commits_after_every_batch() -> None:
    engine, consumer = _engine(0.0)
    for off in (1, 2, 3):
        engine._inflight.append(_batch({"a": off}))
        await engine.settle(1)
    await engine.settle(0)
    assert consumer.commits == [{"a": 1}, {"a": 2}, {"a": 3}]


async def test_latency_ends_at_the_last_ack_not_when_settle_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch's end-to-end latency is measured to the moment its last output was acknowledged: the
    engine settles a batch only after the next one is processed (a fetch wait later), which is not
    part of the latency a consumer of the outputs sees."""
    engine, _ = _engine(0.25)
    clock = [1000.0]
    monkeypatch.setattr("stream.engine.time.time", lambda: clock[0])
    loop = asyncio.get_running_loop()
    first, last = loop.create_future(), loop.create_future()
    res = BatchResult([], np.array([999.9]), np.array([999.95]), 1, 1, 0, 0)
    batch = _InFlight([first, last], {"a": 1}, [("sensors", res)])
    assert batch.acked is None
    first.set_result(None)
    await asyncio.sleep(0)
    assert batch.acked is None
    clock[0] = 1000.02
    last.set_result(None)
    await asyncio.sleep(0)
    assert batch.acked == 1000.02
    clock[0] = 1000.5  # settle() looks much later
    engine._inflight.append(batch)
    await engine.settle(0)
    hist = engine.metrics.of(engine.metrics.e2e_latency, "sensors")
    assert abs(hist._sum.get() - 0.12) < 1e-9  # 1000.02 - 999.9, not 1000.5 - 999.9


async def test_a_failed_send_fails_settle_whether_or_not_it_was_awaited() -> None:
    """A batch whose send failed is not settled (its offsets stay uncommitted): the error comes out of
    ``settle`` both when the acks are awaited there and when they had all arrived before, and every
    failed send's error is retrieved (no "exception was never retrieved" at garbage collection)."""
    loop = asyncio.get_running_loop()
    for already_done in (True, False):
        engine, consumer = _engine(0.0)
        ok, bad, bad2 = loop.create_future(), loop.create_future(), loop.create_future()
        engine._inflight.append(_InFlight([ok, bad, bad2], {"a": 1}, []))
        if already_done:
            ok.set_result(None)
            bad.set_exception(RuntimeError("broker said no"))
            bad2.set_exception(RuntimeError("and no again"))
        else:
            loop.call_soon(ok.set_result, None)
            loop.call_soon(bad.set_exception, RuntimeError("broker said no"))
            loop.call_soon(bad2.set_exception, RuntimeError("and no again"))
        with pytest.raises(RuntimeError, match="broker said no"):
            await engine.settle(0)
        assert len(engine._inflight) == 1 and consumer.commits == []
        assert bad2.exception() is not None  # looked at, so retrieved
