"""The engine's fetch settings on the real client and broker: aiokafka's fetcher has the two
settings the engine's ``FetchPacer`` changes (a version without them would only warn, so this
test is what notices), and a worker that consumed a backlog goes back to idle polling.

Apache Kafka only (the production profile; Tansu's fetches answer at the first byte). Run:
``.venv/bin/python -m pytest -q -s -m integration tests/integration/test_fetch_adapt.py``
"""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest

from stream.admin import create_topics
from stream.engine import BatchEngine
from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings

from .conftest import KafkaBroker, produce_records

pytestmark = pytest.mark.integration


def test_fetches_hold_while_records_flow_and_answer_at_the_first_byte_when_idle(kafka: KafkaBroker) -> None:
    tag = uuid.uuid4().hex[:6]
    topics = {k: f"fa-{tag}-{k}" for k in ("sensors", "predictions", "alerts", "dead_letter", "state")}
    create_topics(kafka.bootstrap, [v for k, v in topics.items() if k != "state"], 2)
    s = Settings(
        broker_url=kafka.url,
        profile="production",
        app_id=f"fa-{tag}",
        sources=("sensors",),
        partitions=2,
        **{f"topic_{k}": v for k, v in topics.items()},  # type: ignore[arg-type]
    )
    t0 = time.time() - 1000
    recs = [
        (topics["sensors"], f"s{i}".encode(), orjson.dumps({"stream": f"s{i}", "ts": t0 + k, "values": [0.1 * k]}))
        for k in range(50)
        for i in range(10)
    ]
    produce_records(kafka.bootstrap, recs)
    metrics = Metrics()
    engine = BatchEngine(s, {"sensors": SourcePipeline("sensors", build_runner(s, "sensors"), s, metrics)}, metrics)
    seen: list[tuple[bool, int, int]] = []

    async def go() -> None:
        await engine.start()
        fetcher = engine.consumer._fetcher
        assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (1, s.fetch_idle_wait)  # starts idle
        adapt = engine.pacer.adapt

        def record(consumer: object, flowing: bool) -> None:
            adapt(consumer, flowing)
            state = (flowing, fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms)
            if not seen or seen[-1] != state:
                seen.append(state)

        engine.pacer.adapt = record  # type: ignore[method-assign]
        task = asyncio.create_task(engine.run())
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (engine.events >= len(recs) and seen and not seen[-1][0]):
                await asyncio.sleep(0.1)
        finally:
            await engine.stop()
            await asyncio.wait_for(task, 10)

    asyncio.run(go())
    assert engine.events == len(recs)
    assert (True, s.fetch_min, s.fetch_wait_ms) in seen  # while the backlog flowed
    assert seen[-1] == (False, 1, s.fetch_idle_wait)  # and idle again after it
