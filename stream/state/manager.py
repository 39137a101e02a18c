"""StateManager, in one file: its snapshots, held-event releases and rebalances order on one per-partition bookkeeping.

Durable per-stream state: offset-tied partition snapshots on a Kafka changelog topic. The module
holds :class:`StateManager`, its records (:class:`PartitionProgress` per owned input partition,
:class:`PendingSnapshot`, :class:`Admitted`) and :class:`StatefulPipeline`, what it needs of a
source's pipeline. Splitting the class would spread one ordering argument over several files:
a snapshot must cover only acknowledged outputs, follow every processing-time release before the
partition runs on, and never be restored across a failed transaction or a revocation.

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

The partition snapshots travel in the changelog's binary format (:mod:`stream.state.changelog`).
On Kafka the worker creates the topic compacted, with segments small enough for the cleaner to
act (:data:`~stream.state.changelog.STATE_TOPIC_CONFIGS`), so a restore reads about the two live
snapshots per partition; Tansu has no compaction, so there the changelog grows and restore reads
it from the beginning. The changelog is read ``read_committed``: with ``exactly_once`` a snapshot
is written in the same transaction as its partition's outputs and offsets
(:mod:`stream.transactions`), so an aborted snapshot is never restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from models.errors import ModelChangeError
from models.state import SlabSnapshot

from ..metrics import Metrics
from ..producer import BulkProducer, Output, send_records
from ..settings import Settings
from ..transactions import PartitionTransactions, TxnWork
from .changelog import encode_snapshot
from .reorder import HeldEvent
from .restore import RestoredSnapshot, changelog_reader, create_state_topic, partition_count, read_latest

__all__ = ["Admitted", "PartitionProgress", "PendingSnapshot", "StateManager", "StatefulPipeline"]

log = logging.getLogger(__name__)


class ReleasedOutputs(Protocol):
    """What a pipeline's release of held events produced (a :class:`stream.pipeline.BatchResult`)."""

    outputs: list[Output]
    partitions: frozenset[int]  # input partitions of the released events


class StatefulPipeline(Protocol):
    """What the state manager needs of a source's pipeline (:class:`stream.pipeline.SourcePipeline`).

    ``fingerprint``: of the runner that builds the source's state (:mod:`models.fingerprint`).
    """

    fingerprint: str

    def partition_snapshot(self, partition: int) -> SlabSnapshot: ...

    def held_events(self, partition: int) -> list[HeldEvent]: ...

    def load_partition(self, partition: int, snap: SlabSnapshot, held: Sequence[HeldEvent] = ()) -> None: ...

    def drop_partition(self, partition: int) -> int: ...

    def held_due(self) -> bool: ...

    def release_due(self, now: float | None = None, only: Collection[int] | None = None) -> ReleasedOutputs | None: ...


@dataclass
class PartitionProgress:
    """Bookkeeping of one owned input partition: how far processing and its snapshots got."""

    source: str
    next_offset: int | None  # next offset to process (None: whatever the consumer delivers first)
    live_from: int  # offsets below this are replayed for state only (outputs exist already)
    snap_offset: int = -1  # offset included by the latest snapshot written/loaded
    slot: int = 1
    since_snapshot: int = 0
    gaps: int = 0
    dirty: bool = False  # changed without a new offset (held events released): snapshot even so
    snap_due: float = 0.0  # monotonic time of its next periodic snapshot (partitions are staggered)


@dataclass
class PendingSnapshot:
    """A partition snapshot encoded for the changelog, not yet written."""

    manager: StateManager
    part: PartitionProgress
    partition: int  # of the changelog topic
    records: list[tuple[bytes, bytes]]
    offset: int
    slot: int

    def written(self) -> None:
        """The records are sent (or committed): the next snapshot of this partition takes the other slot."""
        st = self.part
        st.snap_offset, st.slot, st.since_snapshot, st.dirty = self.offset, self.slot, 0, False
        st.snap_due = time.monotonic() + self.manager.settings.snapshot_interval_s
        self.manager.snapshots_written += 1
        self.manager.m_snapshots.inc()


@dataclass
class Admitted:
    """A micro-batch split by the state manager: ``replay`` runs for state only, ``live`` emits."""

    replay: dict[Any, list[Any]] = field(default_factory=dict)
    live: dict[Any, list[Any]] = field(default_factory=dict)
    dropped: int = 0


class StateManager:
    """Owns the changelog: snapshots owned partitions, restores assigned ones, guards offsets."""

    def __init__(self, settings: Settings, pipelines: Mapping[str, StatefulPipeline], metrics: Metrics) -> None:
        self.settings = settings
        self.pipelines = pipelines
        self.topic_source = {settings.topic(s): s for s in pipelines}
        self.enabled = settings.state_enabled
        self.parts: dict[Any, PartitionProgress] = {}
        self.retained: dict[Any, PartitionProgress] = {}  # revoked but still in memory (kept if re-assigned)
        self.producer: Any = None
        self.reader: Any = None
        self.n_state_partitions = 1
        self._events_since = 0
        self.snapshot_seconds_total = 0.0
        self.snapshots_written = 0
        self.last_restore_s = 0.0
        self.last_restore_records = 0  # changelog records the last restore read (compaction keeps this small)
        self.last_restore_bytes = 0
        self._reseek: list[tuple[Any, int]] = []
        self.bulk: Any = None  # BulkProducer for outputs of held events released between batches
        self.txns: PartitionTransactions | None = None  # exactly_once: everything goes through these
        # at_least_once: each partition's last snapshot on its way, awaited lazily (one per partition at a time)
        self._pending: dict[Any, asyncio.Task[None]] = {}
        # partitions whose transaction failed, with the error: their in-memory state is gone (forget) and
        # they wait for the engine to restore them (reload) or for the next assignment
        self.broken: dict[Any, BaseException] = {}
        self.broken_at: dict[Any, float] = {}  # since when (monotonic)
        self._unsent: list[Any] = []  # such outputs not yet acknowledged (retried before the next release)
        self._unsent_parts: set[Any] = set()  # their partitions: no snapshot until they are acknowledged
        # the input group's rebalances as /ready reports them: joining -> restoring -> assigned
        self.phase = "joining"
        # the metrics live with all others in stream/metrics.py (one place lists every exported name)
        self.m_snapshots = metrics.state_snapshots
        self.m_snapshot_bytes = metrics.state_snapshot_bytes
        self.m_snapshot_s = metrics.state_snapshot_seconds
        self.m_restore_s = metrics.state_restore_seconds
        self.m_replayed = metrics.state_replayed_events
        self.m_dropped = metrics.stale_records_dropped
        self.m_model_change = metrics.state_model_change
        for source in pipelines:  # every (source, action) exported from the start: increase() sees the first one
            for action in ("rewarm", "reset", "refuse"):
                self.m_model_change.labels(source=source, action=action)
        # on_model_change=refuse: the error the worker stops with (the engine raises it from its run loop;
        # aiokafka only logs what a rebalance listener raises)
        self.fatal: ModelChangeError | None = None

    @property
    def replaying(self) -> int:
        """Owned partitions still re-processing input below their committed offset for state only (/ready)."""
        return sum(1 for st in self.parts.values() if st.next_offset is not None and st.next_offset < st.live_from)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, producer: Any, txns: PartitionTransactions | None = None) -> None:
        self.producer = producer
        self.bulk = BulkProducer(producer) if producer is not None else None
        self.txns = txns
        if not self.enabled:
            return
        s = self.settings
        kw = s.kafka_kwargs()
        await create_state_topic(s, kw)
        self.reader = changelog_reader(s, kw)
        await self.reader.start()
        self.n_state_partitions = await partition_count(self.reader, s.topic_state, self.n_state_partitions)
        log.info("state changelog %s (%d partitions)", s.topic_state, self.n_state_partitions)

    def raise_fatal(self) -> None:
        """Raise what stops the worker (:attr:`fatal`), if anything; the engine calls it in its run loop."""
        if self.fatal is not None:
            raise self.fatal

    async def stop(self) -> None:
        await self.drain()
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
        """A periodic snapshot is due, or held events of the reorder buffer are due for release.

        The engine calls :meth:`snapshot` when this is true while it is idle, which releases them.
        """
        if not self.enabled:
            return False
        return self._periodic_due() or self._held_due()

    def _periodic_due(self) -> bool:
        s = self.settings
        if s.snapshot_interval_events and self._events_since >= s.snapshot_interval_events:
            self._events_since = 0
            for st in self.parts.values():
                st.snap_due = 0.0
        now = time.monotonic()
        return any(st.snap_due <= now for st in self.parts.values())

    def due(self, limit: int | None = None) -> list[Any]:
        """Owned partitions whose periodic snapshot is due, most overdue first (at most ``limit``), except
        those whose previous snapshot is still on its way."""
        now = time.monotonic()
        busy = {tp for tp, t in self._pending.items() if not t.done()}
        due = sorted(
            (st.snap_due, i, tp)
            for i, (tp, st) in enumerate(self.parts.items())
            if st.snap_due <= now and tp not in busy
        )
        return [tp for _, _, tp in due[:limit]]

    def _stagger(self, tps: list[Any]) -> None:
        """Spread the first periodic snapshots of newly owned partitions over one interval: each partition
        costs the batch path one snapshot's encoding, not all of them at once (the latency tail)."""
        now, n = time.monotonic(), max(len(tps), 1)
        for i, tp in enumerate(tps):
            st = self.parts.get(tp)
            if st is not None:
                st.snap_due = now + self.settings.snapshot_interval_s * (i + 1) / n

    def _held_due(self) -> bool:
        return bool(self._unsent) or any(p.held_due() for p in self.pipelines.values())

    async def maybe_snapshot(self) -> None:
        """After each batch: release held events that waited too long, then one due periodic snapshot."""
        if not self.enabled:
            return
        if self._held_due():
            await self.release_held()
        if self._periodic_due():
            await self.snapshot(self.due(limit=1), wait=False)

    async def release_held(self) -> set[Any]:
        """Release reorder-buffer events past their max hold (or beyond the cap), produce their outputs,
        wait for the acks, then snapshot their partitions at once.

        Releasing on processing time is not a function of the input, so a replay would not repeat
        it; the snapshot right after it (before any further record of those partitions is
        processed) makes it part of the durable state. Partitions still replaying for state only
        are not released (their outputs exist). Returns the partitions snapshotted.
        """
        released, touched = self._release()
        if self.txns is not None:  # each partition's released outputs and its snapshot in one transaction
            if released:
                await self._write([tp for tp in touched if tp in self.parts], self.parts, self.work_of(released))
            return touched
        outputs = [*self._unsent, *(o for _, outs in released for o in outs)]
        touched |= self._unsent_parts
        if not outputs:
            return set()
        self._unsent, self._unsent_parts = outputs, touched
        futures = await self.bulk.send_all(outputs)
        if futures:
            await asyncio.gather(*futures)
        self._unsent, self._unsent_parts = [], set()
        await self._write([tp for tp in touched if tp in self.parts], self.parts)
        return touched

    def _release(self) -> tuple[list[tuple[str, list[Output]]], set[Any]]:
        """Run the held events due for release: their outputs per source, and the partitions they touched
        (marked dirty: their next snapshot is due even without a new offset)."""
        released: list[tuple[str, list[Output]]] = []
        touched: set[Any] = set()
        for source, pipe in self.pipelines.items():
            live = {
                tp.partition: tp
                for tp, st in self.parts.items()
                if st.source == source and st.next_offset is not None and st.next_offset >= st.live_from
            }
            res = pipe.release_due(only=set(live))
            if res is not None and res.outputs:
                released.append((source, res.outputs))
                touched.update(live[p] for p in res.partitions if p in live)
        for tp in touched:
            self.parts[tp].dirty = True
        return released, touched

    async def snapshot_with(self, work: dict[Any, TxnWork]) -> None:
        """exactly_once, after a batch: the batch's ``work``, the held events due for release and the due
        snapshots, all in one transaction per partition (a snapshot must never commit apart from the outputs
        and offsets of the events it includes)."""
        touched: set[Any] = set()
        if self._held_due():
            released, touched = self._release()
            for tp, w in self.work_of(released).items():
                work.setdefault(tp, TxnWork()).outputs.extend(w.outputs)
        tps = [tp for tp in touched if tp in self.parts]
        if self._periodic_due():
            tps += [tp for tp in self.due(limit=1) if tp not in touched]
        await self._write(tps, self.parts, work)

    def work_of(self, by_source: Iterable[tuple[str, Iterable[Output]]]) -> dict[Any, TxnWork]:
        """Each source's outputs grouped into per-input-partition transactions (by the outputs' ``origin``)."""
        from aiokafka import TopicPartition

        work: dict[tuple[str, int], TxnWork] = {}
        for source, outputs in by_source:
            topic = self.settings.topic(source)
            for o in outputs:
                w = work.get((topic, o.origin))
                if w is None:
                    if o.origin < 0:
                        raise RuntimeError(f"an output to {o.topic} of source {source} names no input partition")
                    w = work[(topic, o.origin)] = TxnWork()
                w.outputs.append(o)
        return {TopicPartition(t, p): w for (t, p), w in work.items()}

    async def snapshot(
        self, tps: list[Any], parts: dict[Any, PartitionProgress] | None = None, wait: bool = True
    ) -> int:
        """Write snapshots of the given owned partitions that changed; returns bytes written.

        Held events due for release are released first (:meth:`release_held`). ``wait=False``
        (at-least-once, the periodic snapshot): return once the records are queued; their acks are
        awaited before the next snapshot, a revocation or the stop (:meth:`drain`), so the batches in
        between do not stall behind tens of MB on their way to the broker.
        """
        parts = self.parts if parts is None else parts
        if not self.enabled:
            return 0
        if self._held_due():
            await self.release_held()  # snapshots the partitions it released from itself
        return await self._write(tps, parts, wait=wait)

    async def drain(self, tps: Iterable[Any] | None = None) -> None:
        """Await the snapshots of these partitions (all when None) still on their way (a failure is logged:
        the partition's previous complete snapshot, in the other slot, stays the one a restore uses)."""
        for tp in list(self._pending) if tps is None else [tp for tp in tps if tp in self._pending]:
            task = self._pending.pop(tp)
            try:
                await task
            except Exception as exc:
                log.warning("a state snapshot of %s was not written (%s); restores use the one before it", tp, exc)

    def snapshot_records(self, tp: Any, parts: dict[Any, PartitionProgress] | None = None) -> PendingSnapshot | None:
        """One partition's snapshot as changelog records, or None when nothing changed since the last one.

        Encoding is cheap next to sending; the caller sends the records (or puts them in the partition's
        transaction) and calls :meth:`PendingSnapshot.written` once they are on their way (at-least-once) or
        committed (exactly_once).
        """
        st = (self.parts if parts is None else parts).get(tp)
        if st is None:
            return None
        if st.next_offset is None or (st.next_offset - 1 == st.snap_offset and not st.dirty):
            st.snap_due = time.monotonic() + self.settings.snapshot_interval_s  # nothing new: ask again later
            return None
        if tp in self._unsent_parts:  # released outputs not acknowledged yet: keep the older snapshot
            return None
        pipe = self.pipelines[st.source]
        offset = st.next_offset - 1
        slot = 1 - st.slot
        records = encode_snapshot(
            self.key(tp),
            pipe.partition_snapshot(tp.partition),
            offset=offset,
            snap_id=time.time_ns(),
            slot=slot,
            fp16=self.settings.snapshot_dtype == "fp16",
            chunk_bytes=self.settings.snapshot_chunk_bytes,
            held=pipe.held_events(tp.partition),
            fingerprint=pipe.fingerprint,
        )
        return PendingSnapshot(self, st, tp.partition % self.n_state_partitions, records, offset, slot)

    async def _write(
        self,
        tps: list[Any],
        parts: dict[Any, PartitionProgress],
        work: dict[Any, TxnWork] | None = None,
        wait: bool = True,
    ) -> int:
        """Snapshot the partitions ``tps`` that changed; with transactions, together with ``work``.

        ``wait=False`` (at-least-once only): the acks are awaited later (:meth:`drain`)."""
        await self.drain(tps)  # one snapshot per partition in flight: a slot is never rewritten while its twin is
        t0 = time.perf_counter()
        snaps = [(tp, sn) for tp in tps if (sn := self.snapshot_records(tp, parts)) is not None]
        nbytes = sum(len(v) for _, sn in snaps for _, v in sn.records)
        if self.txns is not None:
            work = dict(work or {})
            for tp, sn in snaps:
                w = work.setdefault(tp, TxnWork())
                w.state, w.state_partition = sn.records, sn.partition
            failed = await self.txns.commit(work)
            self.fail(failed)
            for tp, sn in snaps:
                if tp not in failed:
                    sn.written()
            sent = any(tp not in failed for tp, _ in snaps)
        else:
            s = self.settings

            async def one(sn: PendingSnapshot) -> None:
                # a partition's chunks queue behind each other in aiokafka (one batch of a partition in
                # flight at a time: a round trip per chunk), so partitions go side by side, and with
                # wait=False beside the batches that follow
                changelog = [Output(s.topic_state, k, v) for k, v in sn.records]
                futures = await send_records(
                    self.producer, s.topic_state, sn.partition, changelog, s.changelog_batch_records
                )
                await asyncio.gather(*futures)

            for _, sn in snaps:
                sn.written()
            if wait:
                await asyncio.gather(*(one(sn) for _, sn in snaps))
            else:
                for tp, sn in snaps:
                    self._pending[tp] = asyncio.create_task(one(sn))
            sent = bool(snaps)
        dt = time.perf_counter() - t0
        self.snapshot_seconds_total += dt
        if sent:
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
        self.phase = "joining"
        revoked = list(revoked)
        for tp in revoked:  # a partition that is not ours any more is not restored by us either
            self.broken.pop(tp, None)
            self.broken_at.pop(tp, None)
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

    async def on_assigned(
        self, assigned: Iterable[Any], consumer: Any, skip: dict[Any, BaseException] | None = None
    ) -> None:
        """Keep state of partitions re-assigned to us, restore others from the changelog, seek.

        ``skip``: partitions not to restore now (exactly_once: their previous owner is not fenced yet);
        they are broken until :meth:`reload`.
        """
        t0 = time.monotonic()
        self.phase = "restoring"
        assigned = [tp for tp in assigned if tp.topic in self.topic_source]
        aset = set(assigned)
        self.broken.clear()  # every assigned partition is kept, restored or skipped below
        self.broken_at.clear()
        skip = skip or {}
        for tp in skip:
            kept = self.retained.pop(tp, None)
            if kept is not None:
                self.pipelines[kept.source].drop_partition(tp.partition)
        self.fail({tp: e for tp, e in skip.items() if tp in aset})
        assigned = [tp for tp in assigned if tp not in skip]
        for tp, st in list(self.retained.items()):
            if tp not in aset:
                self.pipelines[st.source].drop_partition(tp.partition)
                del self.retained[tp]
        committed = await self._committed(assigned, consumer)
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
        await self._restore(restore, committed, consumer, t0)
        self._stagger(assigned)
        self.phase = "assigned"

    def fail(self, failed: dict[Any, BaseException]) -> None:
        """Partitions whose transaction failed: forget their in-memory state (it is ahead of what was
        committed; records of theirs that arrive meanwhile are dropped) until :meth:`reload`."""
        now = time.monotonic()
        for tp in failed:
            st = self.parts.pop(tp, None)
            if st is not None:
                self.pipelines[st.source].drop_partition(tp.partition)
            self.broken_at.setdefault(tp, now)
        self.broken.update(failed)

    async def reload(self, tps: Iterable[Any], consumer: Any) -> None:
        """Restore forgotten partitions (:meth:`fail`) from the changelog and the committed offsets."""
        t0 = time.monotonic()
        tps = [tp for tp in tps if tp not in self.parts]
        await self._restore(tps, await self._committed(tps, consumer), consumer, t0)
        self._stagger(tps)
        for tp in tps:
            self.broken.pop(tp, None)
            self.broken_at.pop(tp, None)

    async def _committed(self, tps: list[Any], consumer: Any) -> dict[Any, int | None]:
        committed: dict[Any, int | None] = {}
        for tp in tps:
            try:
                committed[tp] = await consumer.committed(tp)
            except Exception as exc:
                log.warning("committed offset of %s:%d unknown (%s)", tp.topic, tp.partition, exc)
                committed[tp] = None
        return committed

    async def _restore(self, restore: list[Any], committed: dict[Any, int | None], consumer: Any, t0: float) -> None:
        """Load the latest snapshot of each partition (or nothing), seek to where its state ends.

        A snapshot of another model (:meth:`_changed`) follows ``on_model_change`` instead."""
        snaps = await self._read_latest(restore) if restore and self.enabled else {}
        changed = {tp: got for tp, got in snaps.items() if self._changed(tp, got)}
        if changed and self.settings.on_model_change == "refuse":
            self._refuse(changed)
            restore = [tp for tp in restore if tp not in changed]  # not ours to run: the worker stops
        begin: dict[Any, int] = {}
        need_begin = [
            tp
            for tp in restore
            if (tp not in snaps and committed[tp] is not None and self.enabled)
            or (tp in changed and self.settings.on_model_change == "rewarm")
        ]
        if need_begin:
            try:
                begin = await consumer.beginning_offsets(need_begin)
            except Exception:
                begin = {tp: 0 for tp in need_begin}
        for tp in restore:
            source = self.topic_source[tp.topic]
            c = committed[tp]
            got = snaps.get(tp)
            if tp in changed and got is not None:
                st = self._model_changed(tp, got, c, begin.get(tp), consumer)
            elif got is not None:
                self.pipelines[source].load_partition(tp.partition, got.snap, got.held)
                start = got.offset + 1
                st = PartitionProgress(source, start, max(start, c or 0), snap_offset=got.offset, slot=got.slot)
                consumer.seek(tp, start)
            elif c is not None and self.enabled:
                start = int(begin.get(tp, 0))
                st = PartitionProgress(source, start, max(start, c))
                consumer.seek(tp, start)
            else:  # no snapshot and nothing committed (or state disabled): the consumer's own position
                st = PartitionProgress(source, c, c or 0)
            self.parts[tp] = st
            log.info(
                "%s: restored %s, processing from %s, live from %d",
                self.key(tp),
                "no snapshot (another model's, see above)"
                if tp in changed
                else f"snapshot @ {got.offset} ({len(got.snap)} streams, {len(got.held)} held events)"
                if got
                else "no snapshot",
                st.next_offset,
                st.live_from,
            )
        self.last_restore_s = time.monotonic() - t0
        if restore:
            self.m_restore_s.observe(self.last_restore_s)

    # -- model changes (SEQSTREAM_ON_MODEL_CHANGE) --------------------------------------------
    def _changed(self, tp: Any, got: RestoredSnapshot) -> bool:
        """Whether another model or scoring configuration built this snapshot.

        A snapshot without a fingerprint (written before fingerprints, changelog versions 1 and 2) is
        taken as the current model's, so upgrading seqstream itself does not re-warm every partition,
        unless its state has another layout (hidden or scorer sizes): then another model built it.
        """
        pipe = self.pipelines[self.topic_source[tp.topic]]
        if got.fingerprint is not None:
            return got.fingerprint != pipe.fingerprint
        if len(got.snap):
            mine = pipe.partition_snapshot(tp.partition)  # empty here (not restored yet); its layout is the slab's
            if got.snap.hidden.shape[1:] != mine.hidden.shape[1:] or got.snap.aux.shape[1:] != mine.aux.shape[1:]:
                log.warning(
                    "%s: snapshot @ %d has no model fingerprint (an older worker's) and another state layout "
                    "(%s + aux %s, this model %s + aux %s): another model built it",
                    self.key(tp), got.offset, tuple(got.snap.hidden.shape[1:]), tuple(got.snap.aux.shape[1:]),
                    tuple(mine.hidden.shape[1:]), tuple(mine.aux.shape[1:]),
                )  # fmt: skip
                return True
        log.info("%s: snapshot @ %d has no model fingerprint (an older worker's); restored", self.key(tp), got.offset)
        return False

    def _refuse(self, changed: Mapping[Any, RestoredSnapshot]) -> None:
        """``refuse``: count, and keep the one-line error the worker stops with (:attr:`fatal`)."""
        tp, got = next(iter(changed.items()))
        source = self.topic_source[tp.topic]
        for t in changed:
            self.m_model_change.labels(source=self.topic_source[t.topic], action="refuse").inc()
        more = f" (and {len(changed) - 1} more partition(s))" if len(changed) > 1 else ""
        self.fatal = ModelChangeError(
            f"the state of {tp.topic}:{tp.partition}{more} was built by model {_built_by(got)}, this worker runs "
            f"{self.pipelines[source].fingerprint} (source {source}: another checkpoint or scoring configuration) "
            f"and SEQSTREAM_ON_MODEL_CHANGE=refuse; run the previous checkpoint, or roll the new one out blue/green "
            f"(docs/operations.md, 'Upgrading a model'), or start with SEQSTREAM_ON_MODEL_CHANGE=rewarm or reset"
        )
        log.error("%s", self.fatal)

    def _model_changed(
        self, tp: Any, got: RestoredSnapshot, c: int | None, begin: int | None, consumer: Any
    ) -> PartitionProgress:
        """``rewarm`` or ``reset`` one partition whose snapshot another model built; its state is not loaded.

        rewarm: the partition's retained input before the snapshot's offset (at most
        ``rewarm_max_records``) runs through this model for state only, as the replay after any
        restore does, so the state continues as this model builds it; the offsets and outputs are
        those of the snapshot's (live from ``max(snapshot offset + 1, committed)``). reset (or rewarm
        with no input retained before the snapshot's offset): the streams start fresh at the
        snapshot's offset. Either way the events the snapshot's reorder buffer held are kept: they
        were accepted but not yet run, so their outputs do not exist yet.
        """
        s = self.settings
        source = self.topic_source[tp.topic]
        pipe = self.pipelines[source]
        end = got.offset + 1  # the snapshot covers the partition's events at offsets < end
        live_from = max(end, c or 0)
        action = s.on_model_change
        start = end
        if action == "rewarm":
            lo = int(begin if begin is not None else 0)
            start = max(lo, end - s.rewarm_max_records) if s.rewarm_max_records else lo
            if start >= end:
                log.warning(
                    "%s: the snapshot @ %d was built by model %s, this worker runs %s; no input before offset %d "
                    "is retained (the topic starts at %d), so its %d stream(s) start fresh (as "
                    "SEQSTREAM_ON_MODEL_CHANGE=reset)",
                    self.key(tp), got.offset, _built_by(got), pipe.fingerprint, end, lo, len(got.snap),
                )  # fmt: skip
                action, start = "reset", end
        held = [e for e in got.held if e.offset < start]  # the replay from start holds the others again
        pipe.load_partition(tp.partition, _no_streams(got.snap), held)
        self.m_model_change.labels(source=source, action=action).inc()
        if action == "rewarm":
            log.warning(
                "%s: the snapshot @ %d was built by model %s, this worker runs %s; re-warming %d stream(s) by "
                "replaying offsets %d..%d through this model for state only (SEQSTREAM_ON_MODEL_CHANGE=rewarm)",
                self.key(tp), got.offset, _built_by(got), pipe.fingerprint, len(got.snap), start, live_from - 1,
            )  # fmt: skip
        elif s.on_model_change == "reset":
            log.warning(
                "%s: the snapshot @ %d was built by model %s, this worker runs %s; its %d stream(s) start fresh "
                "(SEQSTREAM_ON_MODEL_CHANGE=reset)",
                self.key(tp), got.offset, _built_by(got), pipe.fingerprint, len(got.snap),
            )  # fmt: skip
        consumer.seek(tp, start)
        # snap_offset -1: the next periodic snapshot replaces the other model's, even before new input
        return PartitionProgress(source, start, live_from, snap_offset=-1, slot=got.slot)

    async def _read_latest(self, tps: list[Any]) -> dict[Any, RestoredSnapshot]:
        """Latest complete snapshot per input partition: read the changelog partitions from the start."""
        s = self.settings
        want = {self.key(tp): tp for tp in tps}
        got, self.last_restore_records, self.last_restore_bytes = await read_latest(
            self.reader, s.topic_state, want, self.n_state_partitions, s.restore_timeout_s
        )
        return got


def _no_streams(like: SlabSnapshot) -> SlabSnapshot:
    """A snapshot of no streams in the layout of ``like`` (loading it leaves the partition empty)."""
    return SlabSnapshot((), like.hidden[:0], like.aux[:0], like.steps[:0], like.last_ts[:0])


def _built_by(got: RestoredSnapshot) -> str:
    """The fingerprint a snapshot names, for messages (without one: another layout, see StateManager._changed)."""
    return got.fingerprint or "unknown (an older worker's snapshot of another state layout)"
