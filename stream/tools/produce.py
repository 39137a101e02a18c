"""``seqstream produce``: a source's simulated streams sent to a broker in real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from models.errors import ConfigError

from ..sources import Event
from ..sources.simulator import Simulator

__all__ = ["produce"]


async def produce(
    bootstrap: Any,
    topic: str,
    sim: Simulator,
    *,
    rate: float,
    seconds: float,
    kafka_kwargs: dict[str, Any] | None = None,
    on_round: Callable[[int, list[Event]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Produce ``sim`` rounds in real time at about ``rate`` events/s; returns the events sent.

    Each round is sent with one ``send_batch`` per partition (see :class:`stream.producer.BulkProducer`).
    """
    from aiokafka import AIOKafkaProducer

    from ..producer import BulkProducer, Output

    if rate <= 0:
        raise ConfigError("--rate must be > 0")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, **(kafka_kwargs or {})
    )
    await producer.start()
    bulk = BulkProducer(producer)
    interval = sim.mean_events_per_round() / rate
    sent = 0
    t_start = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    try:
        while time.monotonic() - t_start < seconds and not (stop is not None and stop.is_set()):
            events = sim.round(time.time())
            if on_round is not None:
                on_round(sim.rounds - 1, events)
            pending.extend(await bulk.send_all([Output(topic, e.key(), e.value()) for e in events]))
            sent += len(events)
            if len(pending) > 256:
                await asyncio.gather(*pending)
                pending.clear()
            delay = t_start + sim.rounds * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
        if pending:
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
