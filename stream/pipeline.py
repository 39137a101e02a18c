"""One source's work on a micro-batch: decode -> ``runner.process`` (once) -> output records.

No Kafka client or event loop here: :class:`SourcePipeline` turns a list of input records into
a list of :class:`Output` records, so the batch consumer, the Faust agents, the benchmarks and
the tests share exactly the same code path.

Every input ends as exactly one output: a ``predictions`` record (accepted) or a ``dead-letter``
record (rejected by the codec or the Runner). Alert transitions add ``anomaly-alerts`` records.

The pipeline delegates what the durable state needs: which partition each stream lives on and
the streams parked off the slab (:class:`~stream.state.parking.PartitionState`), and, with
``SEQSTREAM_REORDER_GRACE_S`` > 0, the reorder buffer that holds events until event time orders
them (:class:`~stream.state.reorder.ReorderBuffer`; :meth:`SourcePipeline.release_due` releases
the events that waited too long on processing time). It runs and encodes what the buffer releases.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import orjson

from models import Batch, Runner
from models.checkpoint import load_checkpoint
from models.errors import ConfigError
from models.state import SlabSnapshot
from models.types import StreamRunner

from .codec import RecordLike, decode_batch, encode_alert, encode_dead, encode_predictions
from .explorer import ring_store_for
from .metrics import Metrics
from .producer import Output
from .settings import Settings
from .sources import SOURCES
from .state import HeldEvent, ParkedRow, ParkedStore, PartitionState, ReorderBuffer

__all__ = ["Output", "SourcePipeline", "build_runner"]

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """Outputs of one micro-batch plus what the caller needs for latency metrics."""

    outputs: list[Output]
    event_ts: np.ndarray  # [n_accepted] float64 event times (epoch s)
    record_ts: np.ndarray  # [n_in] float64 Kafka record timestamps (epoch s)
    n_in: int
    n_predictions: int
    n_dead: int
    n_alerts: int
    partitions: frozenset[int] = frozenset()  # input partitions of released held events (reorder buffer)


@dataclass
class _RunOutcome:
    """What running some events through the Runner produced."""

    outputs: list[Output] = field(default_factory=list)
    dead: list[tuple[RecordLike, str, str]] = field(default_factory=list)
    event_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    n_pred: int = 0
    n_alerts: int = 0

    def add(self, more: _RunOutcome) -> None:
        """Append what a second run produced."""
        self.outputs += more.outputs
        self.dead += more.dead
        self.n_pred += more.n_pred
        self.n_alerts += more.n_alerts
        self.event_ts = np.concatenate([self.event_ts, more.event_ts])  # [n + m]


_partition = operator.attrgetter("partition")
_timestamp = operator.attrgetter("timestamp")


def build_runner(settings: Settings, source: str) -> StreamRunner:
    """The model a source is served with: its own loader (e.g. audio's Silero VAD) where its file in
    ``stream/sources/`` names one, else its forecaster checkpoint with the configured device,
    capacity and threshold override."""
    load = SOURCES[source].load_runner
    if load is not None:
        runner: StreamRunner = load(settings)
        return runner
    ckpt = load_checkpoint(settings.checkpoint(source))
    scoring = ckpt.scoring
    if settings.open_threshold is not None:
        t = settings.open_threshold
        scoring = dataclasses.replace(scoring, open_threshold=t, close_threshold=min(scoring.close_threshold, t))
    return Runner(
        ckpt.model,
        scoring,
        device=settings.device,
        capacity=settings.slab_capacity,
        max_capacity=settings.slab_max_capacity,
        model_id=ckpt.model_id,
        cuda_graphs=settings.cuda_graphs,
        compute_dtype=settings.compute_dtype,
    )


class SourcePipeline:
    """Decode, run and encode micro-batches of one source kind.

    Example:
        >>> from types import SimpleNamespace as R
        >>> from models import NetConfig, RecurrentForecaster, ScoringConfig
        >>> runner = Runner(RecurrentForecaster(NetConfig(hidden_size=8)), ScoringConfig(warmup=0), device="cpu")
        >>> p = SourcePipeline("sensors", runner, Settings())
        >>> rec = R(topic="sensor-readings", partition=0, offset=7, key=b"a", timestamp=0,
        ...         value=b'{"stream": "a", "ts": 1.0, "values": [0.5]}')
        >>> [o.topic for o in p.process([rec], now=2.0).outputs]
        ['predictions']
    """

    def __init__(self, source: str, runner: StreamRunner, settings: Settings, metrics: Metrics | None = None) -> None:
        self.source = source
        self.runner = runner
        self.settings = settings
        self.metrics = metrics
        self.wire = SOURCES[source].wire  # its JSON value (stream/sources/<source>.py)
        self.model_id = runner.model_id
        # what built this source's state, written into every snapshot (stream.state: on_model_change)
        self.fingerprint = runner.fingerprint
        self.threshold = float(runner.threshold)
        # /explorer ring buffers (None: off) show forecasts next to values: a forecaster's only
        self.explorer = ring_store_for(source, runner, settings) if isinstance(runner, Runner) else None
        # durable state: which input partition each stream lives on, and streams parked off the
        # slab (evicted by the resident bound; their state is kept and comes back on their next event)
        self.partitions = PartitionState(source, runner.slab, settings)
        # None: no reordering (not configured, or a source whose file says its events are not held)
        self.reorder = ReorderBuffer.from_settings(settings) if SOURCES[source].reorder else None
        self.clock: Callable[[], float] = time.monotonic  # processing time of arrivals and max hold
        if metrics is not None:
            metrics.model_info.labels(source=source, model=self.model_id).set(1)
            # the slab's gauges describe a state: set when Prometheus scrapes, not after every micro-batch
            # (five gauge writes per source and batch were ~5 % of a small batch's CPU)
            metrics.on_scrape(self._observe_slab)

    # -- the partition bookkeeping (stream.state.parking), reachable under its old names ------------
    @property
    def stream_part(self) -> dict[str, int]:
        """Input partition of every resident (or held) stream."""
        return self.partitions.stream_part

    @property
    def parked(self) -> ParkedStore | dict[str, ParkedRow]:
        """The streams parked off the slab (by the resident bound)."""
        return self.partitions.parked

    @property
    def parked_total(self) -> int:
        """Streams parked so far."""
        return self.partitions.parked_total

    @property
    def resets(self) -> int:
        """Gap resets (``SEQSTREAM_MAX_GAP_S``) so far."""
        return self.partitions.resets

    def _observe_slab(self) -> None:
        if self.metrics is not None:
            s = self.runner.slab
            self.metrics.observe_slab(self.source, len(s), s.nbytes, s.capacity, s.evictions)
            st = self.parked
            if isinstance(st, ParkedStore):
                m = self.metrics
                m.of(m.parked_streams, self.source, "memory").set(st.n_memory)
                m.of(m.parked_streams, self.source, "disk").set(st.n_disk)

    def process(self, records: Sequence[RecordLike], now: float | None = None) -> BatchResult:
        """All outputs of a micro-batch (records of one source, per-partition offset order)."""
        s = self.settings
        now = time.time() if now is None else now
        dec = decode_batch(
            self.wire,
            records,
            n_features=self.runner.n_features,
            now=now,
            max_future_s=s.max_future_s,
            max_payload_bytes=s.max_payload_bytes,
        )
        dead: list[tuple[int, str, str]] = list(dec.errors)
        if not len(dec.index):
            return self._finish(records, [], dead, np.zeros(0, np.float64), 0, 0)
        index = dec.index.tolist()
        # decoded records, in input order (index is ascending: all of them when none was rejected)
        recs = records if len(index) == len(records) else [records[j] for j in index]
        self.stream_part.update(zip(dec.stream_ids, map(_partition, recs)))
        if self.reorder is None:
            ran = self._run(dec.stream_ids, dec.ts, dec.x, recs)
            return self._finish(records, ran.outputs, dead, ran.event_ts, ran.n_pred, ran.n_alerts, dead_recs=ran.dead)
        released = self.reorder.hold(
            records, dec.stream_ids, dec.ts, dec.x, index, dead, now=self.clock(), last_ts=self.partitions.last_ts
        )
        ran = self._run_held(released, "watermark")
        record_ts = np.fromiter((e.timestamp for e in released), np.float64, len(released)) / 1000.0
        return self._finish(
            records,
            ran.outputs,
            dead,
            ran.event_ts,
            ran.n_pred,
            ran.n_alerts,
            dead_recs=ran.dead,
            record_ts=record_ts,
            partitions=frozenset(e.partition for e in released),
        )

    def _run(self, ids: Sequence[str], ts: np.ndarray, x: np.ndarray, recs: Sequence[RecordLike]) -> _RunOutcome:
        """Run events (``ids``/``ts``/``x`` aligned with their input records ``recs``) and encode the outputs."""
        s, src, m = self.settings, self.source, self.metrics
        out = _RunOutcome()
        if not len(ids):
            return out
        reset = self._prepare(ids, ts)
        t0 = time.perf_counter()
        res = self.runner.process(Batch(ids, ts, x))
        if m is not None:
            m.of(m.inference_step, src).observe(time.perf_counter() - t0)
        if self.explorer is not None:
            self.explorer.record(ids, ts, x, res, self.runner.slab, self.parked)
        preds, scores, anomalies = res.prediction, res.score, res.anomaly  # [n, F], [n], [n]
        streams: Sequence[str] = ids
        ok_recs, ok_ts = recs, ts
        if not res.accepted.all():
            accepted = res.accepted.tolist()
            self._rejected(out, ids, ts.tolist(), recs, res.reason, accepted)
            rows = [j for j, ok in enumerate(accepted) if ok]
            streams, ok_recs = [ids[j] for j in rows], [recs[j] for j in rows]
            ok_ts, preds, scores, anomalies = ts[rows], preds[rows], scores[rows], anomalies[rows]
        # the accepted events' predictions in input order, encoded in one call from the arrays
        # (see codec.encode_predictions)
        values = encode_predictions(
            ok_recs,
            streams=streams,
            source=src,
            ts=ok_ts,
            model=self.model_id,
            predictions=preds,
            scores=scores,
            anomalies=anomalies,
        )
        if reset:  # the first prediction of a stream after a gap reset says so
            for j, stream in enumerate(streams):
                if stream in reset:
                    reset.discard(stream)
                    values[j] = orjson.dumps({**orjson.loads(values[j]), "reset": "gap"})
        outputs = out.outputs
        outputs += Output.many(s.topic_predictions, streams, values, map(_partition, ok_recs))
        out.n_pred += len(values)
        for a in res.alerts:
            rec = recs[a.index]
            outputs.append(
                Output(
                    s.topic_alerts,
                    a.stream_id.encode(),
                    encode_alert(
                        rec,
                        stream=a.stream_id,
                        source=src,
                        ts=a.ts,
                        model=self.model_id,
                        state=a.state,
                        score=a.score,
                        threshold=self.threshold if a.threshold is None else a.threshold,
                        expected=a.expected,
                        actual=a.actual,
                        kind=a.kind,
                        channel=a.channel,
                        explanation=a.explanation,
                        extra=a.extra or None,
                    ),
                    rec.partition,
                )
            )
            out.n_alerts += 1
            if m is not None:
                m.alerts.labels(source=src, state=a.state).inc()
        out.event_ts = ts[res.accepted]  # [n_accepted]
        return out

    def _rejected(
        self,
        out: _RunOutcome,
        ids: Sequence[str],
        tss: list[float],
        recs: Sequence[RecordLike],
        reasons: Sequence[str | None],
        accepted: list[bool],
    ) -> None:
        """Dead letters for the events the Runner rejected (``out_of_order``, ``late``, ``non_finite``)."""
        s = self.settings
        for j, ok in enumerate(accepted):
            if ok:
                continue
            reason = reasons[j] or "rejected"
            msg = (
                "event time is older than the stream's last event"
                if reason == "out_of_order"
                else "the model rejected the input as non-finite"
            )
            if reason == "out_of_order" and s.late_grace_s is not None:
                k = self.runner.slab.slot(ids[j])
                last = float(self.runner.slab.last_ts[k]) if k is not None else -np.inf
                if tss[j] < last - s.late_grace_s:
                    reason = "late"
                    msg = (
                        f"event time is {last - tss[j]:.3f} s older than the stream's last event "
                        f"(grace {s.late_grace_s} s)"
                    )
            out.dead.append((recs[j], reason, msg))

    # -- reorder buffer (stream.state.reorder) ----------------------------------------------------
    def _run_held(self, events: list[HeldEvent], cause: str) -> _RunOutcome:
        if self.metrics is not None:
            self.metrics.reorder_held.labels(source=self.source).set(self.n_held)
            if events:
                self.metrics.reorder_released.labels(source=self.source, cause=cause).inc(len(events))
        if not events:
            return _RunOutcome()
        ids = [e.stream for e in events]
        ts = np.fromiter((e.ts for e in events), np.float64, len(events))
        x = np.stack([e.x for e in events]).astype(np.float32, copy=False)  # [n, F]
        return self._run(ids, ts, x, cast(Sequence[RecordLike], events))  # frozen, but the same fields

    @property
    def n_held(self) -> int:
        """Events held by the reorder buffer."""
        return self.reorder.n_held if self.reorder is not None else 0

    def held_due(self, now: float | None = None) -> bool:
        """Whether :meth:`release_due` would release something (an event waited its max hold, or overflow)."""
        if self.reorder is None:
            return False
        return self.reorder.due(self.clock() if now is None else now)

    def release_due(self, now: float | None = None, only: Collection[int] | None = None) -> BatchResult | None:
        """Release held events that waited ``reorder_max_hold_s`` (processing time), and the oldest
        arrivals beyond ``reorder_max_held``; returns their outputs (``None``: nothing released).

        Releasing an event also releases the stream's held events ordered before it, and raises the
        stream's floor to it (later, older arrivals are ``late``). ``only``: release only streams of
        these input partitions (the others keep waiting). The caller must snapshot the released
        partitions before it processes further records of them (``StateManager.release_held``).
        """
        if self.reorder is None:
            return None
        due = self.reorder.take_due(self.clock() if now is None else now, only, self.stream_part)
        if due is None:
            return None
        timed, over = due
        ran = self._run_held(timed, "max_hold")
        if over:
            ran.add(self._run_held(over, "overflow"))
        released = timed + over
        log.debug("reorder buffer of %s released %d event(s) on processing time", self.source, len(released))
        outputs = ran.outputs
        self._dead_letters(ran.dead, outputs)
        if self.metrics is not None:
            self._count_out(self.metrics, ran.n_pred, ran.n_alerts, len(ran.dead))
        record_ts = np.fromiter((e.timestamp for e in released), np.float64, len(released)) / 1000.0
        return BatchResult(
            outputs,
            ran.event_ts,
            record_ts,
            0,
            ran.n_pred,
            len(ran.dead),
            ran.n_alerts,
            frozenset(e.partition for e in released),
        )

    def held_events(self, partition: int) -> list[HeldEvent]:
        """The held events of one input partition's streams, in release order."""
        if self.reorder is None:
            return []
        return self.reorder.events_of(partition, self.stream_part)

    def _load_held(self, partition: int, events: Sequence[HeldEvent]) -> None:
        if not events:
            return
        if self.reorder is None:
            raise ConfigError(
                f"the state snapshot of partition {partition} holds {len(events)} event(s) of a reorder buffer, but "
                "this worker runs with SEQSTREAM_REORDER_GRACE_S=0; start it with the reorder grace the "
                "previous owner had, or the held events would be lost"
            )
        self.reorder.load(events, self.clock())
        sp = self.stream_part
        for e in events:
            sp[e.stream] = partition
        if self.metrics is not None:
            self.metrics.reorder_held.labels(source=self.source).set(self.n_held)

    def _finish(
        self,
        records: Sequence[RecordLike],
        outputs: list[Output],
        dead: list[tuple[int, str, str]],
        event_ts: np.ndarray,
        n_pred: int,
        n_alerts: int,
        *,
        dead_recs: Sequence[tuple[RecordLike, str, str]] = (),
        record_ts: np.ndarray | None = None,
        partitions: frozenset[int] = frozenset(),
    ) -> BatchResult:
        """Dead letters, batch metrics and the result: the common tail of every source's batch.

        ``dead``: (position in ``records``, reason, message); ``dead_recs``: (record, reason, message)
        for events that are not in this batch's input (released by the reorder buffer).
        ``record_ts``: Kafka timestamps of the records whose outputs these are (default: ``records``).
        """
        m, src, n = self.metrics, self.source, len(records)
        all_dead = [(records[i], reason, msg) for i, reason, msg in dead] + list(dead_recs)
        self._dead_letters(all_dead, outputs)
        for rec, reason, msg in all_dead:
            if reason not in ("out_of_order", "late"):  # the input's doing, and frequent: counted, not logged
                log.debug("dead letter %s:%s:%s %s: %s", rec.topic, rec.partition, rec.offset, reason, msg)
        if m is not None:
            m.of(m.events_in, src).inc(n)
            m.of(m.batch_size, src).observe(n)
            self._count_out(m, n_pred, n_alerts, len(all_dead))
        if record_ts is None:
            record_ts = np.fromiter(map(_timestamp, records), np.float64, n) / 1000.0  # [n]
        return BatchResult(outputs, event_ts, record_ts, n, n_pred, len(all_dead), n_alerts, partitions)

    def _dead_letters(self, dead: Sequence[tuple[RecordLike, str, str]], outputs: list[Output]) -> None:
        """Append a dead-letter record per ``(record, reason, message)`` to ``outputs``, counted by reason."""
        s, m, src = self.settings, self.metrics, self.source
        for rec, reason, msg in dead:
            outputs.append(
                Output(
                    s.topic_dead_letter,
                    rec.key,
                    encode_dead(rec, source=src, reason=reason, message=msg),
                    rec.partition,
                )
            )
            if m is not None:
                m.dead_letters.labels(source=src, reason=reason).inc()

    def _count_out(self, m: Metrics, n_pred: int, n_alerts: int, n_dead: int) -> None:
        """Count the outputs by topic in ``m`` (the slab gauges are set at scrape time: ``Metrics.on_scrape``)."""
        s, src = self.settings, self.source
        if n_pred:
            m.of(m.events_out, src, s.topic_predictions).inc(n_pred)
        if n_alerts:
            m.of(m.events_out, src, s.topic_alerts).inc(n_alerts)
        if n_dead:
            m.of(m.events_out, src, s.topic_dead_letter).inc(n_dead)

    # -- durable state (used by stream.state.manager), kept by self.partitions ---------------------
    def _prepare(self, stream_ids: Sequence[str], ts: np.ndarray) -> set[str]:
        """Before a batch: unpark returning streams, gap resets, the resident bound (park LRU streams)."""
        return self.partitions.prepare(stream_ids, ts, keep=self.reorder.streams if self.reorder is not None else ())

    def streams_of(self, partition: int) -> list[str]:
        """Streams of one input partition: resident (and held) ones, then parked ones."""
        return self.partitions.streams_of(partition)

    def partition_snapshot(self, partition: int) -> SlabSnapshot:
        """State of every stream of one input partition (resident and parked)."""
        return self.partitions.snapshot(partition)

    def drop_partition(self, partition: int) -> int:
        """Forget every stream of a partition (it moved to another worker); not counted as evictions."""
        ids, n = self.partitions.drop(partition)
        if self.reorder is not None:
            self.reorder.drop(ids)
            if self.metrics is not None:
                self.metrics.reorder_held.labels(source=self.source).set(self.n_held)
        return n

    def load_partition(self, partition: int, snap: SlabSnapshot, held: Sequence[HeldEvent] = ()) -> None:
        """Load a partition snapshot (into the slab, or parked when a resident bound is set) and the
        events its reorder buffer held."""
        self.drop_partition(partition)
        self.partitions.load(partition, snap)
        self._load_held(partition, held)

    def close(self) -> None:
        """Release the parked store's file (the state itself lives in the changelog)."""
        self.partitions.close()
