"""Which producer guarantees does the embedded broker (Tansu) support? Prints one line per mode.

    python bench/tansu_probe.py

Used for docs/reliability.md: a plain producer works; idempotent and transactional producers fail
at start (InitProducerId), so exactly-once output via Kafka transactions is not available there.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from aiokafka import AIOKafkaProducer

from stream.admin import create_topics
from stream.tools.brokers import EmbeddedBroker


async def _probe(bootstrap: str, **kw: Any) -> str:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000, **kw)
    try:
        await asyncio.wait_for(p.start(), 15)
        if "transactional_id" in kw:
            async with p.transaction():
                await asyncio.wait_for(p.send_and_wait("probe", b"x"), 10)
        else:
            await asyncio.wait_for(p.send_and_wait("probe", b"x"), 10)
        return "ok"
    except Exception as exc:  # the broker's answer is the result
        return f"fails: {type(exc).__name__}: {exc}"[:200]
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(p.stop(), 5)


def main() -> None:
    with EmbeddedBroker() as b:
        create_topics(b.bootstrap, ["probe"], partitions=1)
        for name, kw in (
            ("plain producer", {}),
            ("idempotent producer", {"enable_idempotence": True}),
            ("transactional producer", {"transactional_id": "seqstream-probe"}),
        ):
            print(f"{name:24s} {asyncio.run(_probe(b.bootstrap, **kw))}", flush=True)


if __name__ == "__main__":
    main()
