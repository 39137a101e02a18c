"""Durable per-stream state: offset-tied partition snapshots on a Kafka changelog topic.

Exactly-once state, at-least-once outputs. For every owned input partition the worker tracks
``next_offset`` (the next offset it will process). A snapshot of a partition is written only
between micro-batches and only after the outputs of every processed event were acknowledged
by the broker, and it records ``offset = next_offset - 1``: **snapshot offset S means the state
includes exactly the events with offset <= S of that partition** (streams are keyed by id, so a
stream lives on one partition). On assignment the worker loads the latest complete snapshot,
seeks the input to ``S + 1`` and re-processes ``S + 1 .. C - 1`` (``C``: the committed offset)
for state only, without producing outputs (they were produced before, else ``C`` would not have
been committed), then continues live from ``C``. Outputs of ``C ..`` that a dead worker produced
but did not commit are produced again with the same stable id ``topic:partition:offset`` and the
same content (the state they were computed from is the same).

Changelog record (one Kafka record per chunk, each sent as its own record batch because Tansu's
ListOffsets returns a wrong end offset after multi-record batches)::

    key   = b"<source>:<topic>:<partition>#<slot>.<chunk>"  (slot alternates 0/1 so that, under
            log compaction, the previous complete snapshot survives a crash while writing the next)
    value = header (struct _HEAD) + key + stream ids (u16 length + UTF-8 each) + steps int64[n]
            + last_ts float64[n] + hidden [n, L, K, H] fp32|fp16 + aux [n, A] fp32

The header carries a CRC32 of the body; a damaged or foreign record is skipped with a warning.
On real Kafka create the topic with ``cleanup.policy=compact`` (we request it); Tansu has no
compaction, so there the changelog grows and restore reads it from the beginning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from models.state import SlabSnapshot

from .metrics import Metrics
from .settings import Settings

if TYPE_CHECKING:
    from .pipeline import SourcePipeline

__all__ = ["SnapshotChunk", "StateManager", "concat_snapshots", "decode_chunk", "encode_snapshot", "join_chunks"]

log = logging.getLogger(__name__)

_MAGIC = b"SQS1"
# magic, version, dtype(0 fp32, 1 fp16), slot, pad, snap_id, offset, chunk, nchunks, n, L, K, H, A, keylen, crc
_HEAD = struct.Struct("<4sBBBBqqIIIHHIIHI")
_VERSION = 1


@dataclass(frozen=True)
class SnapshotChunk:
    """One decoded changelog record: a slice of one partition snapshot."""

    key: str  # source:topic:partition
    snap_id: int
    offset: int
    slot: int
    chunk: int
    nchunks: int
    snap: SlabSnapshot


def _empty_snapshot(shape: tuple[int, int, int], a: int) -> SlabSnapshot:
    return SlabSnapshot((), torch.zeros((0, *shape)), torch.zeros((0, a)), np.zeros(0, np.int64), np.zeros(0))


def concat_snapshots(parts: list[SlabSnapshot]) -> SlabSnapshot:
    """One snapshot holding the streams of all ``parts`` (same layout)."""
    if len(parts) == 1:
        return parts[0]
    return SlabSnapshot(
        stream_ids=tuple(s for p in parts for s in p.stream_ids),
        hidden=torch.cat([p.hidden for p in parts]),  # [N, L, K, H]
        aux=torch.cat([p.aux for p in parts]),  # [N, A]
        steps=np.concatenate([p.steps for p in parts]),
        last_ts=np.concatenate([p.last_ts for p in parts]),
    )


def encode_snapshot(
    key: str,
    snap: SlabSnapshot,
    *,
    offset: int,
    snap_id: int,
    slot: int,
    fp16: bool = False,
    chunk_bytes: int = 512 * 1024,
) -> list[tuple[bytes, bytes]]:
    """A partition snapshot as changelog records ``[(record key, value)]`` of at most ~``chunk_bytes``.

    Example:
        >>> s = SlabSnapshot(("a",), torch.ones(1, 1, 1, 2), torch.zeros(1, 3), np.array([4]), np.array([9.0]))
        >>> recs = encode_snapshot("sensors:t:0", s, offset=41, snap_id=1, slot=0)
        >>> c = decode_chunk(recs[0][1]); (recs[0][0], c.offset, c.snap.stream_ids, c.snap.steps.tolist())
        (b'sensors:t:0#0.0', 41, ('a',), [4])
    """
    n = len(snap)
    _, lyr, k, h = snap.hidden.shape if snap.hidden.ndim == 4 else (0, 1, 1, 1)
    a = snap.aux.shape[1] if snap.aux.ndim == 2 else 0
    hid = snap.hidden.to(torch.float16 if fp16 else torch.float32).contiguous().numpy()  # [N, L, K, H]
    aux = snap.aux.to(torch.float32).contiguous().numpy()  # [N, A]
    row = hid[0].nbytes + aux[0].nbytes + 16 + 24 if n else 1
    per = max(1, chunk_bytes // row)
    nchunks = max(1, -(-n // per))
    kb = key.encode()
    out = []
    for c in range(nchunks):
        lo, hi = c * per, min(n, (c + 1) * per)
        ids = b"".join(struct.pack("<H", len(e)) + e for e in (s.encode() for s in snap.stream_ids[lo:hi]))
        body = b"".join(
            [
                kb,
                ids,
                np.ascontiguousarray(snap.steps[lo:hi], np.int64).tobytes(),
                np.ascontiguousarray(snap.last_ts[lo:hi], np.float64).tobytes(),
                hid[lo:hi].tobytes(),
                aux[lo:hi].tobytes(),
            ]
        )
        head = _HEAD.pack(
            _MAGIC, _VERSION, int(fp16), slot, 0, snap_id, offset, c, nchunks, hi - lo, lyr, k, h, a, len(kb),
            zlib.crc32(body),
        )  # fmt: skip
        out.append((f"{key}#{slot}.{c}".encode(), head + body))
    return out


def decode_chunk(value: bytes) -> SnapshotChunk:
    """Parse one changelog record; raises ``ValueError`` for anything that is not an intact chunk."""
    if len(value) < _HEAD.size or value[:4] != _MAGIC:
        raise ValueError("not a seqstream state record")
    _magic, ver, fp16, slot, _, snap_id, offset, c, nchunks, n, lyr, k, h, a, klen, crc = _HEAD.unpack_from(value)
    if ver != _VERSION:
        raise ValueError(f"state record version {ver}; this worker reads {_VERSION}")
    body = memoryview(value)[_HEAD.size :]
    if zlib.crc32(body) != crc:
        raise ValueError("state record checksum mismatch (damaged or tampered)")
    pos = klen
    key = bytes(body[:klen]).decode()
    ids = []
    for _ in range(n):
        (ln,) = struct.unpack_from("<H", body, pos)
        ids.append(bytes(body[pos + 2 : pos + 2 + ln]).decode())
        pos += 2 + ln
    steps = np.frombuffer(body, np.int64, n, pos)
    pos += 8 * n
    last_ts = np.frombuffer(body, np.float64, n, pos)
    pos += 8 * n
    hdt = np.float16 if fp16 else np.float32
    nh = n * lyr * k * h
    hid = np.frombuffer(body, hdt, nh, pos).reshape(n, lyr, k, h)
    pos += nh * np.dtype(hdt).itemsize
    aux = np.frombuffer(body, np.float32, n * a, pos).reshape(n, a)
    if pos + aux.nbytes != len(body):
        raise ValueError("state record has a wrong length")
    snap = SlabSnapshot(
        tuple(ids),
        torch.from_numpy(hid.astype(np.float32)),  # [n, L, K, H]
        torch.from_numpy(aux.copy()),  # [n, A]
        steps.copy(),
        last_ts.copy(),
    )
    return SnapshotChunk(key, snap_id, offset, slot, c, nchunks, snap)


def join_chunks(chunks: Iterable[SnapshotChunk]) -> SlabSnapshot:
    return concat_snapshots([c.snap for c in sorted(chunks, key=lambda c: c.chunk)])


@dataclass
class _Part:
    """Bookkeeping of one owned input partition."""

    source: str
    next_offset: int | None  # next offset to process (None: whatever the consumer delivers first)
    live_from: int  # offsets below this are replayed for state only (outputs exist already)
    snap_offset: int = -1  # offset included by the latest snapshot written/loaded
    slot: int = 1
    since_snapshot: int = 0
    gaps: int = 0


@dataclass
class Admitted:
    """A micro-batch split by the state manager: ``replay`` runs for state only, ``live`` emits."""

    replay: dict[Any, list[Any]] = field(default_factory=dict)
    live: dict[Any, list[Any]] = field(default_factory=dict)
    dropped: int = 0


class StateManager:
    """Owns the changelog: snapshots owned partitions, restores assigned ones, guards offsets."""

    def __init__(self, settings: Settings, pipelines: dict[str, SourcePipeline], metrics: Metrics) -> None:
        self.settings = settings
        self.pipelines = pipelines
        self.topic_source = {settings.topic(s): s for s in pipelines}
        self.enabled = settings.state_enabled
        self.parts: dict[Any, _Part] = {}
        self.retained: dict[Any, _Part] = {}  # revoked but still in memory (kept if re-assigned)
        self.producer: Any = None
        self.reader: Any = None
        self.n_state_partitions = 1
        self._last_snapshot = time.monotonic()
        self._events_since = 0
        self.snapshot_seconds_total = 0.0
        self.snapshots_written = 0
        self.last_restore_s = 0.0
        self._reseek: list[tuple[Any, int]] = []
        # the metrics live with all others in stream/metrics.py (one place lists every exported name)
        self.m_snapshots = metrics.state_snapshots
        self.m_snapshot_bytes = metrics.state_snapshot_bytes
        self.m_snapshot_s = metrics.state_snapshot_seconds
        self.m_restore_s = metrics.state_restore_seconds
        self.m_replayed = metrics.state_replayed_events
        self.m_dropped = metrics.stale_records_dropped

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, producer: Any) -> None:
        self.producer = producer
        if not self.enabled:
            return
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        s = self.settings
        kw = s.kafka_kwargs()
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
                                topic_configs={"cleanup.policy": "compact"},
                            )
                        ]
                    )
                except Exception as exc:  # created concurrently by another worker
                    log.info("state topic %s: %s", s.topic_state, exc)
        finally:
            await admin.close()
        self.reader = AIOKafkaConsumer(
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 << 20,
            fetch_max_wait_ms=50,
            client_id=f"{s.app_id}-state-reader",
            **kw,
        )
        await self.reader.start()
        for _ in range(50):
            parts = self.reader.partitions_for_topic(s.topic_state)
            if parts:
                self.n_state_partitions = len(parts)
                break
            await self.reader._client.force_metadata_update()
            await asyncio.sleep(0.1)
        log.info("state changelog %s (%d partitions)", s.topic_state, self.n_state_partitions)

    async def stop(self) -> None:
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader.stop()

    # -- per batch ------------------------------------------------------------------------
    def admit(self, data: dict[Any, list[Any]]) -> Admitted:
        """Drop records of partitions not owned, duplicates and records after a gap; split replay/live."""
        out = Admitted()
        for tp, recs in data.items():
            st = self.parts.get(tp)
            if st is None or not recs:
                out.dropped += len(recs)
                continue
            nxt = st.next_offset
            if nxt is not None:
                if recs[0].offset < nxt:
                    k = 0
                    while k < len(recs) and recs[k].offset < nxt:
                        k += 1
                    out.dropped += k
                    recs = recs[k:]
                    if not recs:
                        continue
                if recs[0].offset > nxt:
                    st.gaps += 1
                    log.warning(
                        "%s:%d: expected offset %d, got %d; re-seeking", tp.topic, tp.partition, nxt, recs[0].offset
                    )
                    out.dropped += len(recs)
                    self._reseek.append((tp, nxt))
                    continue
            if recs[-1].offset < st.live_from:
                out.replay[tp] = recs
            elif recs[0].offset >= st.live_from:
                out.live[tp] = recs
            else:
                k = next(i for i, r in enumerate(recs) if r.offset >= st.live_from)
                out.replay[tp], out.live[tp] = recs[:k], recs[k:]
        if out.dropped:
            self.m_dropped.inc(out.dropped)
        n_replay = sum(len(v) for v in out.replay.values())
        if n_replay:
            self.m_replayed.inc(n_replay)
        return out

    def take_reseeks(self) -> list[tuple[Any, int]]:
        out, self._reseek = self._reseek, []
        return out

    def advanced(self, data: dict[Any, list[Any]]) -> None:
        """Mark records as processed (their outputs were acknowledged)."""
        for tp, recs in data.items():
            st = self.parts.get(tp)
            if st is not None and recs:
                st.next_offset = recs[-1].offset + 1
                st.since_snapshot += len(recs)
                self._events_since += len(recs)

    def snapshot_due(self) -> bool:
        if not self.enabled:
            return False
        s = self.settings
        if s.snapshot_interval_events and self._events_since >= s.snapshot_interval_events:
            return True
        return time.monotonic() - self._last_snapshot >= s.snapshot_interval_s

    async def maybe_snapshot(self) -> None:
        if self.snapshot_due():
            await self.snapshot(list(self.parts))

    async def snapshot(self, tps: list[Any], parts: dict[Any, _Part] | None = None) -> int:
        """Write snapshots of the given owned partitions that changed; returns bytes written."""
        parts = self.parts if parts is None else parts
        self._last_snapshot = time.monotonic()
        self._events_since = 0
        if not self.enabled:
            return 0
        t0 = time.perf_counter()
        futures = []
        nbytes = 0
        p = self.producer
        for tp in tps:
            st = parts.get(tp)
            if st is None or st.next_offset is None or st.next_offset - 1 == st.snap_offset:
                continue
            pipe = self.pipelines[st.source]
            snap = pipe.partition_snapshot(tp.partition)
            offset = st.next_offset - 1
            slot = 1 - st.slot
            records = encode_snapshot(
                self.key(tp),
                snap,
                offset=offset,
                snap_id=time.time_ns(),
                slot=slot,
                fp16=self.settings.snapshot_dtype == "fp16",
                chunk_bytes=self.settings.snapshot_chunk_bytes,
            )
            cp = tp.partition % self.n_state_partitions
            for k, v in records:  # one record per batch: Tansu's ListOffsets stays right
                b = p.create_batch()
                b.append(key=k, value=v, timestamp=None)
                futures.append(await p.send_batch(b, self.settings.topic_state, partition=cp))
                nbytes += len(v)
            st.snap_offset, st.slot, st.since_snapshot = offset, slot, 0
            self.snapshots_written += 1
            self.m_snapshots.inc()
        if futures:
            await asyncio.gather(*futures)
        dt = time.perf_counter() - t0
        self.snapshot_seconds_total += dt
        if futures:
            self.m_snapshot_s.observe(dt)
            self.m_snapshot_bytes.inc(nbytes)
        return nbytes

    def key(self, tp: Any) -> str:
        return f"{self.topic_source[tp.topic]}:{tp.topic}:{tp.partition}"

    # -- rebalance ------------------------------------------------------------------------
    async def on_revoked(self, revoked: Iterable[Any], flush: bool = True) -> None:
        """Flush snapshots of revoked partitions; keep their state in memory until the assignment.

        ``flush=False`` (a batch may still be in flight): no snapshot, and the in-memory state is
        not trusted either (dropped at the assignment, restored from the changelog if re-assigned).
        """
        tps = [tp for tp in revoked if tp in self.parts]
        if flush:
            try:
                await self.snapshot(tps)
            except Exception as exc:
                log.warning("could not flush snapshots on revocation (%s); the next owner replays from older ones", exc)
        for tp in tps:
            st = self.parts.pop(tp)
            if not flush:
                st.next_offset = None
            self.retained[tp] = st

    async def on_assigned(self, assigned: Iterable[Any], consumer: Any) -> None:
        """Keep state of partitions re-assigned to us, restore others from the changelog, seek."""
        t0 = time.monotonic()
        assigned = [tp for tp in assigned if tp.topic in self.topic_source]
        aset = set(assigned)
        for tp, st in list(self.retained.items()):
            if tp not in aset:
                self.pipelines[st.source].drop_partition(tp.partition)
                del self.retained[tp]
        committed: dict[Any, int | None] = {}
        for tp in assigned:
            try:
                committed[tp] = await consumer.committed(tp)
            except Exception as exc:
                log.warning("committed offset of %s:%d unknown (%s)", tp.topic, tp.partition, exc)
                committed[tp] = None
        restore = []
        for tp in assigned:
            c = committed[tp]
            kept = self.retained.pop(tp, None)
            # kept state continues only where the group's committed offset vouches for it: a commit that
            # vanished (a broker that lost its data, a re-created topic, expired offsets) restores instead
            if kept is not None and kept.next_offset is not None and c is not None and c <= kept.next_offset:
                kept.live_from = max(c or 0, kept.next_offset)
                self.parts[tp] = kept
                consumer.seek(tp, kept.next_offset)
                continue
            if kept is not None:
                self.pipelines[kept.source].drop_partition(tp.partition)
            restore.append(tp)
        snaps = await self._read_latest(restore) if restore and self.enabled else {}
        begin: dict[Any, int] = {}
        need_begin = [tp for tp in restore if tp not in snaps and committed[tp] is not None and self.enabled]
        if need_begin:
            try:
                begin = await consumer.beginning_offsets(need_begin)
            except Exception:
                begin = {tp: 0 for tp in need_begin}
        for tp in restore:
            source = self.topic_source[tp.topic]
            c = committed[tp]
            got = snaps.get(tp)
            if got is not None:
                offset, slot, snap = got
                self.pipelines[source].load_partition(tp.partition, snap)
                start = offset + 1
                st = _Part(source, start, max(start, c or 0), snap_offset=offset, slot=slot)
                consumer.seek(tp, start)
            elif c is not None and self.enabled:
                start = int(begin.get(tp, 0))
                st = _Part(source, start, max(start, c))
                consumer.seek(tp, start)
            else:  # no snapshot and nothing committed (or state disabled): the consumer's own position
                st = _Part(source, c, c or 0)
            self.parts[tp] = st
            log.info(
                "%s: restored %s, processing from %s, live from %d",
                self.key(tp),
                f"snapshot @ {got[0]} ({len(got[2])} streams)" if got else "no snapshot",
                st.next_offset,
                st.live_from,
            )
        self.last_restore_s = time.monotonic() - t0
        if restore:
            self.m_restore_s.observe(self.last_restore_s)

    async def _read_latest(self, tps: list[Any]) -> dict[Any, tuple[int, int, SlabSnapshot]]:
        """Latest complete snapshot per input partition: read the changelog partitions from the start."""
        from aiokafka import TopicPartition

        want = {self.key(tp): tp for tp in tps}
        cps = sorted({TopicPartition(self.settings.topic_state, tp.partition % self.n_state_partitions) for tp in tps})
        r = self.reader
        r.assign(cps)
        await r.seek_to_beginning(*cps)
        ends = await r.end_offsets(cps)
        pending: dict[str, dict[int, dict[int, SnapshotChunk]]] = {}
        best: dict[str, tuple[int, int, int, list[SnapshotChunk]]] = {}  # key -> (offset, snap_id, slot, chunks)
        deadline = time.monotonic() + self.settings.restore_timeout_s
        done = {cp for cp in cps if ends.get(cp, 0) == 0}
        while len(done) < len(cps) and time.monotonic() < deadline:
            data = await r.getmany(timeout_ms=200, max_records=10_000)
            for recs in data.values():
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
            log.warning(
                "state changelog not fully read within %.0f s; restoring older snapshots",
                self.settings.restore_timeout_s,
            )
        log.info(
            "read state changelog %s up to %s: %d complete snapshot(s) of %d wanted",
            self.settings.topic_state,
            {cp.partition: ends.get(cp) for cp in cps},
            len(best),
            len(want),
        )
        r.assign([])
        return {want[k]: (off, slot, join_chunks(chs)) for k, (off, _, slot, chs) in best.items()}
