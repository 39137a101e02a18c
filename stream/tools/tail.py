"""``seqstream tail TOPIC``: print a topic's records, one readable line each (kcat ``-C`` style).

Where to start (``--offset``): ``end`` (new records only, the default), ``beginning``, an absolute offset
``N`` or ``-N``: the last ``N`` records of each partition. ``--partition`` reads only those partitions;
``--group`` joins a consumer group instead (its committed offsets decide, ``--offset beginning|end``
only where a new group starts) and commits what it printed. ``--key`` keeps the records with that
key; ``--format json`` prints one JSON object per record. Keys (and values in JSON) that are not
valid UTF-8 are shown as ``b64:`` + base64, never with replacement characters.

Example:
    >>> print(format_record("anomaly-alerts", 0, 5, b"pump-7",
    ...       b'{"state": "open", "stream": "pump-7", "score": 0.93, "explanation": "open: expected [1], got [9]"}'))
    anomaly-alerts[0]@5 pump-7  ALERT open  score=0.930  open: expected [1], got [9]
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from models.errors import ConfigError, InputError

from .produce import B64, parse_bytes

__all__ = ["format_json", "format_record", "parse_offset", "render_bytes", "tail"]


def render_bytes(b: bytes | None) -> str | None:
    """Bytes as text: UTF-8 when valid (and not itself starting with ``b64:``), else ``b64:`` + base64.

    The inverse of :func:`stream.tools.produce.parse_bytes`, so ``tail --format json`` lines can be
    sent back with ``produce --from-stdin --format json``.

    Example:
        >>> render_bytes(b"pump-7"), render_bytes(b"\\xff\\xfe"), render_bytes(None)
        ('pump-7', 'b64://4=', None)
    """
    if b is None:
        return None
    try:
        text = b.decode()
    except UnicodeDecodeError:
        return B64 + base64.b64encode(b).decode()
    return B64 + base64.b64encode(b).decode() if text.startswith(B64) else text


def format_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> str:
    head = f"{topic}[{partition}]@{offset} {render_bytes(key) if key else '-'} "
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


def format_json(
    topic: str,
    partition: int,
    offset: int,
    timestamp: int | None,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> str:
    """One record as a JSON line (what ``produce --from-stdin --format json`` reads back).

    Example:
        >>> line = format_json("t", 0, 7, 1700000000000, b"\\xff", b"1.5", [("h", b"x")])
        >>> line[:60]
        '{"topic":"t","partition":0,"offset":7,"timestamp":1700000000'
        >>> line[60:]
        '000,"key":"b64:/w==","value":"1.5","headers":[["h","x"]]}'
    """
    return orjson.dumps(
        {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "timestamp": timestamp,
            "key": render_bytes(key),
            "value": render_bytes(value),
            "headers": [[k, render_bytes(v)] for k, v in headers],
        }
    ).decode()


def parse_offset(text: str) -> str | int:
    """``--offset``: ``beginning``, ``end``, an offset ``N`` or ``-N`` (the last N records per partition)."""
    t = text.strip().lower()
    if t in ("beginning", "end"):
        return t
    try:
        return int(t)
    except ValueError:
        raise ConfigError(f"--offset {text!r}: expected beginning, end, an offset N or -N (the last N)") from None


async def tail(
    bootstrap: Any,
    topic: str,
    *,
    from_beginning: bool = False,
    limit: int | None = None,
    raw: bool = False,
    idle_exit: float | None = None,
    kafka_kwargs: dict[str, Any] | None = None,
    offset: str | int | None = None,
    partitions: Sequence[int] | None = None,
    group: str | None = None,
    key: str | None = None,
    fmt: str = "text",
    exit_at_end: bool = False,
    out: Callable[[str], None] | None = None,
) -> int:
    """Print records until ``limit`` records, ``idle_exit`` seconds of silence, the end (``exit_at_end``)
    or Ctrl-C. ``key`` keeps only records with that key (``b64:...`` for binary keys)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream.admin import partitions_of

    fmt = "raw" if raw else fmt
    if fmt not in ("text", "json", "raw"):
        raise ConfigError(f"--format {fmt!r}: expected text, json or raw")
    where = offset if offset is not None else ("beginning" if from_beginning else "end")
    if group is not None:
        if partitions:
            raise ConfigError("--group and --partition: a group member reads the partitions the group assigns it")
        if not isinstance(where, str):
            raise ConfigError(
                f"--group with --offset {where}: the group's committed offsets decide where it reads; "
                "--offset beginning|end only says where a new group starts"
            )
        if exit_at_end:
            raise ConfigError("--exit-at-end needs fixed partitions; use --timeout with --group")
    want_key = parse_bytes(key) if key is not None else None
    write = out or (lambda s: print(s, flush=True))

    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=group is not None,
        auto_offset_reset="earliest" if where == "beginning" else "latest",
        **(kafka_kwargs or {}),
    )
    try:
        await c.start()  # inside the try: a failed start is closed too (no "Unclosed AIOKafkaConsumer")
        parts = await partitions_of(c, topic, timeout=2.0)
        if not parts:
            raise InputError(f"topic {topic!r} does not exist (list the topics with kafka-topics.sh --list)")
        missing = sorted(set(partitions or ()) - parts)
        if missing:
            raise InputError(
                f"topic {topic!r} has partitions 0-{len(parts) - 1}; no partition {', '.join(map(str, missing))}"
            )
        tps = [TopicPartition(topic, p) for p in sorted(partitions or parts)]
        end: dict[Any, int] = {}
        if group is not None:
            c.subscribe([topic])
        else:
            c.assign(tps)
            end = await c.end_offsets(tps)
            if where == "beginning":
                await c.seek_to_beginning(*tps)
            elif where == "end":
                await c.seek_to_end(*tps)
            else:
                begin = await c.beginning_offsets(tps)
                for tp in tps:  # kcat: an absolute offset, or -N from the end; clamped to what exists
                    o = end[tp] + int(where) if int(where) < 0 else int(where)
                    c.seek(tp, min(max(o, begin[tp]), end[tp]))
        n, last = 0, time.monotonic()

        async def at_end() -> bool:
            for tp in tps:
                if await c.position(tp) < end[tp]:
                    return False
            return True

        while limit is None or n < limit:
            if exit_at_end and await at_end():
                break
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
                    if want_key is not None and r.key != want_key:
                        continue
                    if fmt == "raw":
                        write(r.value.decode(errors="replace") if r.value is not None else "null")
                    elif fmt == "json":
                        write(format_json(tp.topic, tp.partition, r.offset, r.timestamp, r.key, r.value, r.headers))
                    else:
                        write(format_record(tp.topic, tp.partition, r.offset, r.key, r.value))
                    n += 1
        return 0
    finally:
        await asyncio.shield(c.stop())
