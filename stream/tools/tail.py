"""``seqstream tail TOPIC``: print a topic's records, one readable line each.

Example:
    >>> print(format_record("anomaly-alerts", 0, 5, b"pump-7",
    ...       b'{"state": "open", "stream": "pump-7", "score": 0.93, "explanation": "open: expected [1], got [9]"}'))
    anomaly-alerts[0]@5 pump-7  ALERT open  score=0.930  open: expected [1], got [9]
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import orjson

__all__ = ["format_record", "tail"]


def format_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> str:
    head = f"{topic}[{partition}]@{offset} {key.decode(errors='replace') if key else '-'} "
    try:
        obj = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return head + repr(value[:200] if value else value)
    if not isinstance(obj, dict):
        return head + orjson.dumps(obj).decode()[:300]
    if "state" in obj and "explanation" in obj:
        return head + f" ALERT {obj['state']}  score={obj.get('score', 0):.3f}  {obj['explanation']}"
    if "reason" in obj and "value_b64" in obj:
        raw = base64.b64decode(obj["value_b64"]) if obj.get("value_b64") else b""
        return head + f" DEAD {obj['reason']}: {obj.get('message', '')}  value={raw[:120]!r}"
    if "prediction" in obj and "score" in obj:
        pred = ", ".join(f"{v:.4g}" for v in obj["prediction"] if v is not None)
        flag = " ANOMALY" if obj.get("anomaly") else ""
        return head + f" ts={obj.get('ts', 0):.3f} score={obj['score']:.3f} prediction=[{pred}]{flag}"
    return head + orjson.dumps(obj).decode()[:300]


async def tail(
    bootstrap: Any,
    topic: str,
    *,
    from_beginning: bool = False,
    limit: int | None = None,
    raw: bool = False,
    idle_exit: float | None = None,
    kafka_kwargs: dict[str, Any] | None = None,
) -> int:
    """Print records until ``limit`` records, ``idle_exit`` seconds of silence, or Ctrl-C."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream.admin import partitions_of

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **(kafka_kwargs or {}))
    await c.start()
    try:
        parts = await partitions_of(c, topic, timeout=2.0)
        if not parts:
            print(f"topic {topic!r} does not exist")
            return 1
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        if from_beginning:
            await c.seek_to_beginning(*tps)
        else:
            await c.seek_to_end(*tps)
        n, last = 0, time.monotonic()
        while limit is None or n < limit:
            data = await c.getmany(timeout_ms=500)
            if not data:
                if idle_exit is not None and time.monotonic() - last > idle_exit:
                    break
                continue
            last = time.monotonic()
            for tp, recs in data.items():
                for r in recs:
                    if limit is not None and n >= limit:
                        break
                    if raw:
                        print(r.value.decode(errors="replace") if r.value is not None else None)
                    else:
                        print(format_record(tp.topic, tp.partition, r.offset, r.key, r.value))
                    n += 1
        return 0
    finally:
        await asyncio.shield(c.stop())
