"""Exactly-once outputs: one Kafka transaction per input partition and micro-batch.

``SEQSTREAM_GUARANTEE=exactly_once``. For every input partition it owns, a worker runs one
transactional producer whose ``transactional.id`` is ``<consumer group>:<topic>:<partition>``.
Each micro-batch commits, per input partition it touched, one transaction holding that
partition's outputs (predictions, alerts, dead letters), its changelog snapshot records when a
snapshot is due, and its next input offset (``send_offsets_to_transaction``). A
``read_committed`` reader sees all of them or none.

Why a transactional id per input partition (Kafka's first exactly-once scheme, "EOS alpha", as in
Kafka Streams before KIP-447 and in Faust): aiokafka 0.14's ``send_offsets_to_transaction`` sends
no consumer-group generation or member id, so the group coordinator cannot reject an offset
commit from a worker that lost the partition in a rebalance (a "zombie": paused by GC, cut off
from the network, ``kill -STOP``). Fencing therefore comes from the transactional id: the new owner
of partition P starts the producer of P's id before it reads P's committed offset and changelog
(:meth:`PartitionTransactions.open` is called at assignment, before the restore). Its
``InitProducerId`` bumps the id's epoch, which

* fences the zombie: every later produce, offset commit or ``EndTxn`` of the old epoch fails with
  ``ProducerFenced``, so nothing the zombie does for P after the hand-over becomes visible;
* finishes the zombie's open transaction first (aborted, or completed if it was already
  committing), so the committed offset and the changelog the new owner reads are final.

Only the owner of P writes under P's id, and P's outputs, offsets and snapshots always travel
together, so after any crash or rebalance the committed offset, the last committed snapshot and
the visible outputs agree: nothing is lost and nothing is visible twice.

A failed commit (broker unreachable for longer than the request timeout, fenced) is aborted; the
caller then drops the partition's in-memory state and restores it from the changelog and the
committed offset, as after a rebalance (``BatchEngine``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stream.admin import BrokerError

from .metrics import Metrics
from .producer import BulkProducer, Output, send_records
from .settings import Settings

__all__ = ["PartitionTransactions", "TxnWork"]

log = logging.getLogger(__name__)


@dataclass
class TxnWork:
    """What one input partition commits in one transaction.

    Example:
        >>> w = TxnWork(offset=42)
        >>> (w.outputs, w.state, w.offset)
        ([], [], 42)
    """

    outputs: list[Output] = field(default_factory=list)
    state: list[tuple[bytes, bytes]] = field(default_factory=list)  # changelog records (key, value)
    state_partition: int = 0  # their partition of the changelog topic
    offset: int | None = None  # the input offset to commit (the next one to read); None: no commit


class PartitionTransactions:
    """The transactional producers of the owned input partitions, and their commits.

    Example:
        >>> tx = PartitionTransactions(Settings(broker_url="kafka://k:9092", guarantee="exactly_once"))
        >>> from aiokafka import TopicPartition
        >>> tx.transactional_id(TopicPartition("sensor-readings", 3))
        'seqstream-core:sensor-readings:3'
    """

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self._producers: dict[Any, tuple[Any, BulkProducer]] = {}

    def transactional_id(self, tp: Any) -> str:
        return f"{self.settings.group_id}:{tp.topic}:{tp.partition}"

    def _new_producer(self, txn_id: str) -> Any:
        from aiokafka import AIOKafkaProducer

        s = self.settings
        return AIOKafkaProducer(
            transactional_id=txn_id,
            acks="all",
            linger_ms=s.producer_linger_ms,
            max_batch_size=1 << 20,
            max_request_size=8 << 20,
            client_id=f"{s.app_id}-txn",
            # a transaction left open by a crashed owner blocks read_committed readers of every partition
            # it wrote until its new owner starts (which aborts it) or this timeout passes
            transaction_timeout_ms=int(max(10.0, 2 * s.broker_session_timeout) * 1000),
            **s.kafka_kwargs(),
        )

    async def probe(self) -> None:
        """Start and stop one transactional producer: the broker supports transactions and lets us use them.

        Raises :class:`BrokerError` with what to do otherwise (one line).
        """
        p = self._new_producer(f"{self.settings.group_id}:probe")
        try:
            await asyncio.wait_for(p.start(), timeout=max(10.0, self.settings.broker_session_timeout))
        except Exception as exc:
            raise BrokerError(
                f"SEQSTREAM_GUARANTEE=exactly_once, but the broker refused a transactional producer "
                f"({type(exc).__name__}: {exc or 'no detail'}); it needs Kafka transactions (Apache Kafka >= 0.11 with "
                "transaction.state.log settings that fit the cluster, and the TransactionalId ACLs if ACLs are on); "
                "use SEQSTREAM_GUARANTEE=at_least_once otherwise"
            ) from None
        finally:
            with contextlib.suppress(Exception):
                await p.stop()

    async def open(self, tps: Iterable[Any]) -> None:
        """Start the producers of these partitions (fences their previous owners and finishes their transactions)."""
        new = [tp for tp in tps if tp not in self._producers]

        async def one(tp: Any) -> None:
            p = self._new_producer(self.transactional_id(tp))
            try:
                await p.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await p.stop()
                raise
            self._producers[tp] = (p, BulkProducer(p))

        t0 = time.monotonic()
        results = await asyncio.gather(*(one(tp) for tp in new), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        if new:
            log.info("exactly_once: %d transactional producer(s) started in %.2f s", len(new), time.monotonic() - t0)

    async def open_all(self, tps: Iterable[Any], attempts: int = 3) -> dict[Any, BaseException]:
        """:meth:`open`, retried; returns the partitions whose producer still could not start, with the error."""
        tps = list(tps)
        last: BaseException | None = None
        for i in range(attempts):
            try:
                await self.open(tps)
                return {}
            except Exception as exc:
                last = exc
                log.warning(
                    "exactly_once: starting transactional producers failed (%s); attempt %d of %d", exc, i + 1, attempts
                )
                await asyncio.sleep(1.0)
        assert last is not None
        return {tp: last for tp in tps if tp not in self._producers}

    async def close(self, tps: Iterable[Any] | None = None) -> None:
        """Stop the producers of these partitions (all when ``tps`` is None)."""
        gone = list(self._producers) if tps is None else [tp for tp in tps if tp in self._producers]
        stopping = [self._producers.pop(tp)[0] for tp in gone]

        async def stop(p: Any) -> None:
            with contextlib.suppress(Exception):
                await p.stop()

        await asyncio.gather(*(stop(p) for p in stopping))

    def owns(self, tp: Any) -> bool:
        return tp in self._producers

    async def commit(self, work: dict[Any, TxnWork]) -> dict[Any, BaseException]:
        """One transaction per partition, all at once; returns the partitions whose transaction failed.

        A failed partition's producer is closed (a fenced or broken producer cannot be reused); the
        caller restores the partition's state and calls :meth:`open` again.
        """
        items = [(tp, w) for tp, w in work.items() if w.outputs or w.state or w.offset is not None]
        if not items:
            return {}
        results = await asyncio.gather(*(self._one(tp, w) for tp, w in items), return_exceptions=True)
        failed: dict[Any, BaseException] = {}
        for (tp, _), r in zip(items, results):
            if isinstance(r, BaseException):
                failed[tp] = r
        if self.metrics is not None:
            self.metrics.transactions.labels(outcome="committed").inc(len(items) - len(failed))
            if failed:
                self.metrics.transactions.labels(outcome="aborted").inc(len(failed))
        if failed:
            for tp, exc in failed.items():
                log.warning(
                    "exactly_once: the transaction of %s:%d failed (%s: %s); it was aborted, the partition's state is "
                    "restored from the changelog",
                    tp.topic,
                    tp.partition,
                    type(exc).__name__,
                    exc,
                )
            await self.close(failed)
        return failed

    async def _one(self, tp: Any, w: TxnWork) -> None:
        got = self._producers.get(tp)
        if got is None:
            raise BrokerError(f"no transactional producer for {tp.topic}:{tp.partition} (not owned)")
        p, bulk = got
        s = self.settings
        await p.begin_transaction()
        try:
            if w.outputs:
                await bulk.send_all(w.outputs)  # acknowledged before the commit marker is written
            if w.state:
                changelog = [Output(s.topic_state, k, v) for k, v in w.state]
                await send_records(p, s.topic_state, w.state_partition, changelog, s.changelog_batch_records)
            if w.offset is not None:
                await p.send_offsets_to_transaction({tp: w.offset}, s.group_id)
            await p.commit_transaction()
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.abort_transaction(), timeout=5.0)
            raise
