"""``seqstream produce``: a source's simulated streams sent to a broker in real time (:func:`produce`), or
stdin's lines sent to any topic, kcat ``-P`` style (:func:`produce_lines`: ``key<TAB>value`` or JSON lines)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable
from typing import Any, BinaryIO, NamedTuple

import orjson

from models.errors import ConfigError, InputError

from ..sources import Event
from ..sources.simulator import Simulator

__all__ = ["Record", "parse_bytes", "parse_json", "parse_kv", "produce", "produce_lines", "record_parser"]


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
    bulk = BulkProducer(producer)
    interval = sim.mean_events_per_round() / rate
    sent = 0
    pending: list[asyncio.Future[Any]] = []
    try:
        await producer.start()  # inside the try: a failed start is closed too (no "Unclosed AIOKafkaProducer")
        t_start = time.monotonic()
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


# -- kcat -P style: records from stdin --------------------------------------------------------

B64 = "b64:"  # prefix of bytes that are not shown as text (see stream.tools.tail.render_bytes)
_JSON_FIELDS = {"key", "value", "partition", "headers"}
_IGNORED_FIELDS = {"topic", "offset", "timestamp"}  # what `tail --format json` adds: its lines can be sent back
_SEND_WINDOW = 1000  # records queued before waiting for their acks


class Record(NamedTuple):
    """One record read from a line: key and value bytes (None: null), partition (None: by key), headers."""

    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def parse_bytes(text: str) -> bytes:
    """A key, value or header given as a JSON string: UTF-8, or ``b64:`` + base64 for any other bytes.

    Example:
        >>> parse_bytes("pump-7"), parse_bytes("b64://4=")
        (b'pump-7', b'\\xff\\xfe')
    """
    if text.startswith(B64):
        try:
            return base64.b64decode(text[len(B64) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{text[:40]!r} starts with {B64!r} but the rest is not base64 ({exc})") from None
    return text.encode()


def parse_kv(line: bytes, delimiter: bytes = b"\t") -> Record | None:
    """``key<DELIM>value`` (split at the first delimiter), or a value without key; None for an empty line.

    Example:
        >>> parse_kv(b"pump-7\\t{\\"value\\": 1.5}\\n")
        Record(key=b'pump-7', value=b'{"value": 1.5}', partition=None, headers=())
        >>> parse_kv(b"just a value\\r\\n").key is None
        True
    """
    line = line.rstrip(b"\n")
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        return None
    key, sep, value = line.partition(delimiter)
    if not sep:
        return Record(None, line)
    return Record(key, value)


def parse_json(line: bytes) -> Record | None:
    """A JSON object ``{"key", "value", "partition", "headers"}``; None for an empty line.

    ``value``: a string is sent as its UTF-8 bytes (``b64:...``: decoded), null as a tombstone, anything
    else as its JSON text. ``key``: a string or null. ``headers``: an object or a list of ``[name, value]``.

    Example:
        >>> parse_json(b'{"key": "pump-7", "value": {"ts": 1.0, "value": 0.5}, "partition": 2}')
        Record(key=b'pump-7', value=b'{"ts":1.0,"value":0.5}', partition=2, headers=())
    """
    if not line.strip():
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object with key/value/partition/headers, got {type(obj).__name__}")
    unknown = set(obj) - _JSON_FIELDS - _IGNORED_FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; known: key, value, partition, headers")
    if "value" not in obj:
        raise ValueError('no "value" (use "value": null for a tombstone)')
    key = obj.get("key")
    if key is not None and not isinstance(key, str):
        raise ValueError(f'"key" must be a string or null, got {type(key).__name__}')
    value = obj["value"]
    if value is None:
        vbytes = None
    elif isinstance(value, str):
        vbytes = parse_bytes(value)
    else:
        vbytes = orjson.dumps(value)
    part = obj.get("partition")
    if part is not None and (isinstance(part, bool) or not isinstance(part, int) or part < 0):
        raise ValueError(f'"partition" must be an integer >= 0, got {part!r}')
    return Record(None if key is None else parse_bytes(key), vbytes, part, _headers(obj.get("headers")))


def _headers(h: Any) -> tuple[tuple[str, bytes | None], ...]:
    if h is None:
        return ()
    pairs = list(h.items()) if isinstance(h, dict) else h
    if not isinstance(pairs, list) or not all(
        isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], (str, type(None)))
        for p in pairs
    ):
        raise ValueError('"headers" must be an object of strings or a list of [name, value] pairs')
    return tuple((k, None if v is None else parse_bytes(v)) for k, v in pairs)


def record_parser(fmt: str, key_delimiter: str = "\t") -> Callable[[bytes], Record | None]:
    """The line parser of ``--format kv|json``."""
    if fmt == "json":
        return parse_json
    if fmt != "kv":
        raise ConfigError(f"--format {fmt!r}: expected kv or json")
    if not key_delimiter:
        raise ConfigError("--key-delimiter must not be empty (default: a tab)")
    delim = key_delimiter.replace("\\t", "\t").encode()  # `-K '\t'` typed in a shell: a tab
    return lambda line: parse_kv(line, delim)


async def produce_lines(
    bootstrap: Any,
    topic: str,
    lines: BinaryIO,
    *,
    fmt: str = "kv",
    key_delimiter: str = "\t",
    partition: int | None = None,
    kafka_kwargs: dict[str, Any] | None = None,
) -> int:
    """Send each line of ``lines`` as one record to ``topic`` (kcat ``-P``); returns the records sent.

    Lines are read as they come (a pipe, a terminal); sends are batched by the producer and all are
    acknowledged before returning. A line that cannot be parsed stops the command: the records before
    it are flushed and an :class:`~models.errors.InputError` names the line and why. Empty lines are
    skipped. A JSON line's ``partition`` wins over ``partition``.
    """
    from aiokafka import AIOKafkaProducer

    from ..admin import partitions_of

    parse = record_parser(fmt, key_delimiter)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **(kafka_kwargs or {}))
    sent = 0
    pending: list[asyncio.Future[Any]] = []
    try:
        await producer.start()  # inside the try: a failed start is closed too (no "Unclosed AIOKafkaProducer")
        parts = await partitions_of(producer, topic, timeout=5.0)
        if not parts:
            raise InputError(
                f"topic {topic!r} does not exist; create it first (seqstream broker --create-topics creates the "
                "worker's topics; kafka-topics.sh --create for others)"
            )
        loop = asyncio.get_running_loop()
        number = 0
        while True:
            # read in a thread: the producer keeps sending while a terminal or a slow pipe waits
            line = await loop.run_in_executor(None, lines.readline)
            if not line:
                break
            number += 1
            try:
                rec = parse(line)
                if rec is None:
                    continue
                part = rec.partition if rec.partition is not None else partition
                if part is not None and part not in parts:
                    raise ValueError(f"partition {part} does not exist ({topic!r} has partitions 0-{len(parts) - 1})")
            except ValueError as exc:
                if pending:
                    await asyncio.gather(*pending)
                raise InputError(
                    f"stdin line {number}: {exc}; the {sent} record(s) before it were sent, nothing after it"
                ) from None
            pending.append(
                await producer.send(topic, rec.value, key=rec.key, partition=part, headers=list(rec.headers) or None)
            )
            sent += 1
            if len(pending) >= _SEND_WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
        if pending:
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
