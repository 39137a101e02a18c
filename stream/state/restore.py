"""The changelog topic on the broker: created (compacted) at start, read back to restore partitions.

:class:`~stream.state.manager.StateManager` decides what to restore and when; this module does
the Kafka side of it: the topic as the worker creates it (:func:`create_state_topic`), the
``read_committed`` consumer that reads it (:func:`changelog_reader`), and the scan for the latest
complete snapshot of each wanted partition (:func:`read_latest`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from models.state import SlabSnapshot

from ..settings import Settings
from .changelog import STATE_TOPIC_CONFIGS, SnapshotChunk, decode_chunk, join_chunks, join_fingerprint, join_held
from .reorder import HeldEvent

__all__ = ["RestoredSnapshot", "changelog_reader", "create_state_topic", "partition_count", "read_latest"]

log = logging.getLogger(__name__)


class RestoredSnapshot(NamedTuple):
    """The latest complete snapshot of one input partition, as read back from the changelog."""

    offset: int  # the snapshot includes exactly the partition's events at offsets <= this
    slot: int  # the changelog slot it was written to (the next snapshot takes the other)
    snap: SlabSnapshot
    held: list[HeldEvent]  # events its reorder buffer held
    fingerprint: str | None = None  # of the runner that built it (None: written before fingerprints)


async def create_state_topic(s: Settings, kw: dict[str, Any]) -> None:
    """Create the changelog topic (:data:`STATE_TOPIC_CONFIGS`) unless it exists; ``kw``: ``s.kafka_kwargs()``."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**kw)
    await admin.start()
    try:
        if s.topic_state not in set(await admin.list_topics()):
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            s.topic_state,
                            s.partitions,
                            s.replication_factor,
                            topic_configs=STATE_TOPIC_CONFIGS,
                        )
                    ]
                )
            except Exception as exc:  # created concurrently by another worker
                log.info("state topic %s: %s", s.topic_state, exc)
    finally:
        await admin.close()


def changelog_reader(s: Settings, kw: dict[str, Any]) -> Any:
    """The consumer that reads the changelog back (not started; partitions are assigned per restore);
    ``kw``: ``s.kafka_kwargs()``."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",  # an aborted exactly_once snapshot is never restored
        max_partition_fetch_bytes=8 << 20,
        fetch_max_wait_ms=50,
        client_id=f"{s.app_id}-state-reader",
        **kw,
    )


async def partition_count(reader: Any, topic: str, default: int) -> int:
    """The changelog's partition count once the started ``reader`` knows it (``default`` after ~5 s)."""
    for _ in range(50):
        parts = reader.partitions_for_topic(topic)
        if parts:
            return len(parts)
        await reader._client.force_metadata_update()
        await asyncio.sleep(0.1)
    return default


async def read_latest(
    reader: Any, topic: str, want: Mapping[str, Any], n_partitions: int, timeout_s: float
) -> tuple[dict[Any, RestoredSnapshot], int, int]:
    """The latest complete snapshot of each partition in ``want`` (changelog key -> input partition),
    read from the start of the changelog partitions that hold them: ``({input partition: snapshot},
    records read, bytes read)``. Partitions without a complete snapshot are left out; after
    ``timeout_s`` the scan stops and older snapshots (or none) are restored."""
    from aiokafka import TopicPartition

    cps = sorted({TopicPartition(topic, tp.partition % n_partitions) for tp in want.values()})
    r = reader
    r.assign(cps)
    await r.seek_to_beginning(*cps)
    ends = await r.end_offsets(cps)
    pending: dict[str, dict[int, dict[int, SnapshotChunk]]] = {}
    best: dict[str, tuple[int, int, int, list[SnapshotChunk]]] = {}  # key -> (offset, snap_id, slot, chunks)
    deadline = time.monotonic() + timeout_s
    done = {cp for cp in cps if ends.get(cp, 0) == 0}
    n_read = n_bytes = 0
    while len(done) < len(cps) and time.monotonic() < deadline:
        data = await r.getmany(timeout_ms=200, max_records=10_000)
        for recs in data.values():
            n_read += len(recs)
            n_bytes += sum(len(rec.value or b"") for rec in recs)
            for rec in recs:
                kstr = (rec.key or b"").decode(errors="replace").split("#", 1)[0]
                if kstr not in want or rec.value is None:
                    continue
                try:
                    ch = decode_chunk(rec.value)
                except ValueError as exc:
                    log.warning("skipping state record %s@%d: %s", kstr, rec.offset, exc)
                    continue
                b = best.get(ch.key)
                if b is not None and (ch.offset, ch.snap_id) <= (b[0], b[1]):
                    continue
                got = pending.setdefault(ch.key, {}).setdefault(ch.snap_id, {})
                got[ch.chunk] = ch
                if len(got) == ch.nchunks:
                    best[ch.key] = (ch.offset, ch.snap_id, ch.slot, list(got.values()))
                    pending[ch.key] = {i: v for i, v in pending[ch.key].items() if i > ch.snap_id}
        for cp in cps:
            if cp not in done and await r.position(cp) >= ends.get(cp, 0):
                done.add(cp)
    if len(done) < len(cps):
        log.warning("state changelog not fully read within %.0f s; restoring older snapshots", timeout_s)
    log.info(
        "read state changelog %s up to %s: %d record(s), %.1f MB, %d complete snapshot(s) of %d wanted",
        topic,
        {cp.partition: ends.get(cp) for cp in cps},
        n_read,
        n_bytes / 1e6,
        len(best),
        len(want),
    )
    r.assign([])
    snaps = {
        want[k]: RestoredSnapshot(off, slot, join_chunks(chs), join_held(chs), join_fingerprint(chs))
        for k, (off, _, slot, chs) in best.items()
    }
    return snaps, n_read, n_bytes
