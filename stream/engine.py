"""The batch-native consumer loop: aiokafka ``getmany`` -> per-source pipelines -> bulk produce -> commit.

Why not Faust's per-event stream (``stream.take``)? Measured on this machine, Faust's per-message
stream/consumer machinery caps a worker at ~5k events/s whatever the agent does, hard-codes a
1.5 s broker fetch wait (~1.3 s p50 latency on Tansu), and skipped records across rebalances in
3 of 16 kill tests, while a plain aiokafka consumer reaches ~60k events/s with the same model
and showed no gaps. So the input path is one aiokafka consumer in its own consumer group
(``Settings.group_id``), run as a Faust service inside the Faust worker (which keeps the CLI,
web server, ``/metrics`` page and lifecycle). Each micro-batch is what ``getmany`` returns (up
to ``batch_max``; when fewer records are buffered it waits at most ``batch_wait_s`` for more),
split by source, run through each source's pipeline once, produced with one ``send_batch`` per
output partition, and committed after the broker acknowledged every output (at-least-once; every
output carries the stable id ``topic:partition:offset`` of its input for deduplication).

With ``SEQSTREAM_GUARANTEE=exactly_once`` each micro-batch instead commits one Kafka transaction
per input partition it touched: the partition's outputs, its next offset and, when due, its
state snapshot (:mod:`stream.transactions`); the input is read ``read_committed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiokafka.abc import ConsumerRebalanceListener

from .input_consumer import BrokerWatch, FetchPacer
from .kafka_logs import quiet_repeated_kafka_errors
from .metrics import Metrics, observe_many
from .pipeline import BatchResult, SourcePipeline
from .producer import BulkProducer, Output
from .settings import Settings
from .state import StateManager
from .transactions import PartitionTransactions, TxnWork

__all__ = ["BatchEngine", "BulkProducer"]

log = logging.getLogger(__name__)


class BatchEngine:
    """Consume all input topics in micro-batches and run each source's pipeline once per batch.

    Example:
        >>> engine = BatchEngine(Settings(broker_url="kafka://127.0.0.1:9092"), {}, Metrics())  # doctest: +SKIP
        >>> await engine.start(); await engine.run()                                           # doctest: +SKIP
    """

    def __init__(self, settings: Settings, pipelines: dict[str, SourcePipeline], metrics: Metrics) -> None:
        self.settings = settings
        self.pipelines = pipelines
        self.metrics = metrics
        self.topic_source = {settings.topic(s): s for s in pipelines}
        self.consumer: Any = None
        self.producer: Any = None
        self.state_producer: Any = None  # at_least_once: the changelog's own producer
        self.bulk: BulkProducer | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._last_lag = 0.0
        self.batches = 0
        self.events = 0
        # batches produced but not yet acknowledged, oldest first; committed in order after their acks
        self._inflight: deque[_InFlight] = deque()
        self._commit_task: asyncio.Task[None] | None = None
        self._to_commit: dict[Any, int] = {}  # acknowledged offsets not committed yet (commit_interval_s)
        self._last_commit = 0.0  # monotonic time of the last commit request
        self.watch = BrokerWatch(settings, metrics)
        self.pacer = FetchPacer(settings)
        self.state = StateManager(settings, pipelines, metrics)
        self.txns: PartitionTransactions | None = (
            PartitionTransactions(settings, metrics) if settings.exactly_once else None
        )
        self._frozen = False
        self._restoring = False  # a rebalance's restore holds the lock (a stop abandons it at once)

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        s = self.settings
        kw = s.kafka_kwargs()
        quiet_repeated_kafka_errors()
        if self.txns is not None:
            await self.txns.probe()  # a broker without transactions: one clear error, before anything else
        else:
            self.producer = AIOKafkaProducer(
                acks="all" if s.producer_acks == "all" else int(s.producer_acks),
                linger_ms=s.producer_linger_ms,
                max_batch_size=1 << 20,
                max_request_size=8 << 20,
                client_id=f"{s.app_id}-producer",
                **kw,
            )
            await self.producer.start()
            self.bulk = BulkProducer(self.producer)
            # the changelog has a producer (and so connections) of its own: a snapshot of tens of MB on
            # its way to the broker does not queue the outputs of the batches that follow it
            self.state_producer = AIOKafkaProducer(
                acks="all",
                linger_ms=s.producer_linger_ms,
                max_batch_size=1 << 20,
                max_request_size=8 << 20,
                client_id=f"{s.app_id}-state",
                **kw,
            )
            await self.state_producer.start()
        await self.state.start(self.state_producer, self.txns)
        self.consumer = AIOKafkaConsumer(
            group_id=s.group_id,
            client_id=f"{s.app_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset=s.auto_offset_reset,
            # idle until the first records come (then the pacer switches to the micro-batch's size and deadline)
            fetch_max_wait_ms=s.fetch_idle_wait,
            fetch_min_bytes=1,
            max_partition_fetch_bytes=4 << 20,
            session_timeout_ms=int(s.broker_session_timeout * 1000),
            heartbeat_interval_ms=int(s.broker_heartbeat_interval * 1000),
            # exactly_once: inputs of aborted upstream transactions are never processed
            isolation_level="read_committed" if s.exactly_once else "read_uncommitted",
            **kw,
        )
        await self.consumer.start()
        self.consumer.subscribe(list(self.topic_source), listener=_RebalanceListener(self))
        self.metrics.up.set(1)
        self.metrics.broker_connected.set(1)
        log.info(
            "consuming %s as group %r (%s, batch_max=%d, batch_wait=%.3fs, fetch %d bytes or %d ms, idle %d ms, "
            "session %.0fs)",
            ", ".join(self.topic_source),
            s.group_id,
            s.guarantee,
            s.batch_max,
            s.batch_wait_s,
            s.fetch_min,
            s.fetch_wait_ms,
            s.fetch_idle_wait,
            s.broker_session_timeout,
        )

    async def stop(self, timeout: float | None = None) -> None:
        """Stop within ``timeout`` s (default: 0.6 x ``stop_timeout_s``) in any phase (stream/stopping.py)."""
        from .stopping import stop_engine

        self._stopping.set()
        await stop_engine(self, self.settings.stop_timeout_s * 0.6 if timeout is None else timeout)
        for pipe in self.pipelines.values():  # parked-state spill files (the state is in the changelog)
            close = getattr(pipe, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
        if self._frozen:  # the frozen heap becomes collectable again (an engine stopped in a longer-lived process)
            gc.unfreeze()
            self._frozen = False

    async def _fetch(self) -> dict[Any, list[Any]]:
        s = self.settings
        data: dict[Any, list[Any]] = await self.consumer.getmany(timeout_ms=200, max_records=s.batch_max)
        total = sum(len(v) for v in data.values())
        self.pacer.adapt(self.consumer, total > 0)
        if 0 < total < s.batch_max and s.batch_wait_s > 0:
            more = await self.consumer.getmany(timeout_ms=int(s.batch_wait_s * 1000), max_records=s.batch_max - total)
            for tp, recs in more.items():
                data.setdefault(tp, []).extend(recs)
        return data

    async def run(self) -> None:
        """The consume loop; returns after :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                data = await self._fetch()
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("fetch failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            self.state.raise_fatal()  # on_model_change=refuse (aiokafka swallows a rebalance listener's errors)
            if self.state.broken:
                async with self._lock:
                    await self._repair()
            if data:
                async with self._lock:
                    if self._stopping.is_set():
                        return
                    await self.process(data)
                if not self._frozen and self.settings.gc_freeze:
                    self._freeze()
            else:
                async with self._lock:
                    await self.settle(0)  # idle: nothing to overlap the acks with
                    if self.state.snapshot_due():  # flush what changed since the last snapshot
                        try:
                            await self.state.snapshot(self.state.due(), wait=False)
                        except Exception as exc:
                            log.warning("snapshot failed (%s); retrying at the next interval", exc)
            now = time.monotonic()
            if now - self._last_lag > 1.0:
                self._last_lag = now
                self.watch.check(self.consumer, now)
                await self._update_lag()

    def _freeze(self) -> None:
        """Collect once, then exempt everything alive now from later collections (``gc.freeze``).

        Each micro-batch allocates thousands of container objects that outlive the young
        generations, so full collections keep running; without this they traverse every object
        the worker will hold until it exits. Objects created later (new streams) are still collected.
        """
        gc.collect()
        gc.freeze()
        self._frozen = True
        log.info("gc: %d long-lived objects frozen after the first batch", gc.get_freeze_count())

    async def process(self, data: dict[Any, list[Any]]) -> list[BatchResult]:
        """Run one micro-batch: pipelines, produce; settle older batches (acks, commit); snapshot.

        The state manager first drops records of partitions this worker does not own (a fetch that
        raced a rebalance), duplicates and records after a gap (re-seeking), and splits off records
        below the committed offset of a restored partition: those re-run for state only.

        At-least-once: the outputs' acks are awaited later (:meth:`settle`), while the next batch is
        fetched and processed: at most ``inflight_batches`` batches wait for acks. Offsets are
        committed only after their batch's acks, in order, and a snapshot is taken only when nothing
        is in flight, so a crash at any point loses no output.

        Exactly-once: one transaction per input partition holds its outputs, its next offset and its
        snapshot when one is due; all of them commit before the next batch is fetched.
        """
        adm = self.state.admit(data)
        for tp, off in self.state.take_reseeks():
            with contextlib.suppress(Exception):
                self.consumer.seek(tp, off)
        if adm.replay:
            replay: dict[str, list[Any]] = defaultdict(list)
            for tp, recs in adm.replay.items():
                replay[self.topic_source[tp.topic]].extend(recs)
            for source, recs in replay.items():
                self._run_pipeline(source, recs)  # outputs exist already (offsets below the commit)
        by_source: dict[str, list[Any]] = defaultdict(list)
        offsets: dict[Any, int] = {}
        for tp, recs in adm.live.items():
            if not recs:
                continue
            by_source[self.topic_source[tp.topic]].extend(recs)
            offsets[tp] = recs[-1].offset + 1
        results: list[tuple[str, BatchResult]] = []
        for source, recs in by_source.items():
            results.append((source, self._run_pipeline(source, recs)))
        # the in-memory position moves now (the next fetch continues from here); the commit comes after
        self.state.advanced(adm.replay)
        self.state.advanced(adm.live)
        if self.txns is not None:
            await self._commit_transactions(results, offsets)
            return [r for _, r in results]
        assert self.bulk is not None
        futures = await self.bulk.send_all([o for _, res in results for o in res.outputs])
        self._inflight.append(_InFlight(futures, offsets, results))
        await self.settle(self.settings.inflight_batches - 1)
        if self.state.snapshot_due():
            await self.settle(0)  # a snapshot covers only offsets whose outputs were acknowledged
            await self.state.maybe_snapshot()
        return [r for _, r in results]

    async def _commit_transactions(self, results: list[tuple[str, BatchResult]], offsets: dict[Any, int]) -> None:
        """exactly_once: each input partition's outputs, next offset and due snapshot in one transaction."""
        st = self.state
        work = st.work_of((source, res.outputs) for source, res in results)
        for tp, off in offsets.items():
            work.setdefault(tp, TxnWork()).offset = off
        if st.snapshot_due():  # released held events and snapshots join the partitions' transactions
            await st.snapshot_with(work)
        elif work:
            assert self.txns is not None
            st.fail(await self.txns.commit(work))
        self._observe(results)
        self.batches += 1

    def _observe(self, results: list[tuple[str, BatchResult]], at: float | None = None) -> None:
        """Latency histograms and counts of a batch whose outputs were acknowledged (or committed) at
        ``at`` (default: now)."""
        now = time.time() if at is None else at
        for source, res in results:
            observe_many(self.metrics.of(self.metrics.e2e_latency, source), now - res.event_ts)
            observe_many(self.metrics.of(self.metrics.processing_latency, source), now - res.record_ts)
            self.events += res.n_in

    async def _repair(self) -> None:
        """Restore the partitions whose transaction failed (exactly_once); a fenced one waits for the rebalance.

        ``ProducerFenced`` means another worker owns the partition now: starting its producer again
        would fence that owner in turn, so the partition stays forgotten until the rebalance that
        revokes it; only if the group still gives it to this worker two session timeouts later is it
        restored (whoever fenced it is then not its owner). A partition no longer assigned is dropped.
        """
        from aiokafka.errors import ProducerFenced

        st = self.state
        owned = set(self.consumer.assignment()) if self.consumer is not None else set()
        patience = 2 * self.settings.broker_session_timeout
        now = time.monotonic()
        fix = []
        for tp, exc in list(st.broken.items()):
            if tp not in owned:
                st.broken.pop(tp)
                st.broken_at.pop(tp, None)
            elif not isinstance(exc, ProducerFenced) or now - st.broken_at.get(tp, now) > patience:
                fix.append(tp)
        if not fix or self.txns is None:
            return
        try:
            await self.txns.open(fix)
            await st.reload(fix, self.consumer)
        except Exception as exc:
            log.warning("restoring %d partition(s) after a failed transaction failed (%s); retrying", len(fix), exc)
            await asyncio.sleep(0.5)

    async def settle(self, keep: int = 0) -> None:
        """Await the acks of the oldest in-flight batches until at most ``keep`` remain; commit them.

        Also settles, without waiting, every batch whose acks have all arrived already. Acknowledged
        offsets are committed at most every ``commit_interval_s``; ``settle(0)`` commits them all and
        waits for the last commit. Call with the engine lock held.
        """
        q = self._inflight
        while q and (len(q) > keep or all(f.done() for f in q[0].futures)):
            b = q[0]
            if b.futures and not all(f.done() for f in b.futures):
                await asyncio.gather(*b.futures)
            else:  # acknowledged already (the usual case): no gather, whose future and one callback per
                # send cost a loop turn each (~180 a second in the demo mix); a failed send raises as there
                errors = [f.exception() for f in b.futures]  # every one retrieved (a cancelled one raises)
                failed = next((e for e in errors if e is not None), None)
                if failed is not None:
                    raise failed
            q.popleft()
            self._observe(b.results, b.acked)
            self.batches += 1
            self._to_commit.update(b.offsets)
        now = time.monotonic()
        if self._to_commit and (keep == 0 or now - self._last_commit >= self.settings.commit_interval_s):
            offsets, self._to_commit, self._last_commit = self._to_commit, {}, now
            self._commit_task = asyncio.create_task(self._commit(offsets, after=self._commit_task))
        if keep == 0 and self._commit_task is not None:
            task, self._commit_task = self._commit_task, None
            await task

    def _run_pipeline(self, source: str, recs: Sequence[Any]) -> BatchResult:
        pipe = self.pipelines[source]
        try:
            return pipe.process(recs)
        except Exception as exc:  # a bug must not stop the worker nor lose the records
            log.exception("pipeline %s failed on a batch of %d; routing it to dead-letter", source, len(recs))
            from .codec import encode_dead

            topic = self.settings.topic_dead_letter
            msg = f"internal error: {type(exc).__name__}: {exc}"[:500]
            outs = [
                Output(topic, r.key, encode_dead(r, source=source, reason="internal_error", message=msg), r.partition)
                for r in recs
            ]
            self.metrics.dead_letters.labels(source=source, reason="internal_error").inc(len(recs))
            empty = np.zeros(0, np.float64)
            return BatchResult(outs, empty, empty, len(recs), 0, len(recs), 0)

    async def _commit(self, offsets: dict[Any, int], after: asyncio.Task[None] | None = None) -> None:
        if after is not None:  # commits land in order
            await after
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # e.g. a rebalance revoked the partitions meanwhile
            log.warning("offset commit failed (%s); the batch may be re-delivered (outputs carry stable ids)", exc)

    async def _update_lag(self) -> None:
        c = self.consumer
        if c is None:
            return
        for tp in c.assignment():
            hw = c.highwater(tp)
            if hw is None:
                continue
            try:
                pos = await c.position(tp)
            except Exception:
                continue
            self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, hw - pos))


@dataclass
class _InFlight:
    """A produced micro-batch awaiting its acks: the send futures, the offsets to commit, results."""

    futures: list[asyncio.Future[Any]]
    offsets: dict[Any, int]
    results: list[tuple[str, BatchResult]]
    acked: float | None = None  # wall time of the last ack (None: not all arrived yet)

    def __post_init__(self) -> None:
        # the latency of an output ends at its ack, not when settle() next looks at the batch (that is
        # after the next micro-batch, up to a fetch wait later)
        pending = [f for f in self.futures if not f.done()]
        if not pending:
            self.acked = time.time()
            return
        left = len(pending)

        def one_done(_: asyncio.Future[Any]) -> None:
            nonlocal left
            left -= 1
            if left == 0:
                self.acked = time.time()

        for f in pending:
            f.add_done_callback(one_done)


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Rebalance hooks: finish the in-flight batches and flush the revoked partitions' snapshots before
    partitions move; restore the assigned ones (:class:`~stream.state.StateManager`) before they run."""

    def __init__(self, engine: BatchEngine) -> None:
        self.engine = engine

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:  # the wall time says how long a partition was unowned (until "partitions owned at")
            log.info(
                "partitions revoked at %.3f: %s", time.time(), sorted(f"{tp.topic}:{tp.partition}" for tp in revoked)
            )
        # the run loop holds the lock while a batch is in flight; waiting here lets it finish and commit,
        # then the revoked partitions' snapshots are flushed (state at exactly the committed offsets)
        engine = self.engine
        lock = engine._lock
        try:
            await asyncio.wait_for(lock.acquire(), timeout=10.0)
        except TimeoutError:
            log.warning("in-flight batch did not finish within 10 s of a rebalance; it may be re-delivered")
            await engine.state.on_revoked(revoked, flush=False)
        else:
            try:
                await engine.settle(0)  # acks and commits of the batches still in flight
                await engine.state.on_revoked(revoked, flush=True)
            except Exception as exc:
                log.warning("settling in-flight batches on revocation failed (%s); they may be re-delivered", exc)
                await engine.state.on_revoked(revoked, flush=False)
            finally:
                lock.release()
        if engine.txns is not None:  # the next owner's producers fence these ids anyway; stop ours first
            await engine.txns.close(revoked)
        engine.metrics.assigned_partitions.set(0)
        for tp in revoked:
            engine.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(0)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))
        engine = self.engine
        async with engine._lock:
            unfenced: dict[Any, BaseException] = {}
            if engine.txns is not None:
                # fence the previous owners (and finish their transactions) before reading offsets and state
                unfenced = await engine.txns.open_all(assigned)
            engine._restoring = True
            try:
                await engine.state.on_assigned(assigned, engine.consumer, skip=unfenced)
            except Exception:
                log.exception("restoring state of the assigned partitions failed")
                raise
            finally:
                engine._restoring = False
        engine.metrics.assigned_partitions.set(len(assigned))
        log.info("partitions owned at %.3f: %s", time.time(), sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))
