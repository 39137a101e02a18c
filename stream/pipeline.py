"""One source's work on a micro-batch: decode -> ``Runner.process`` (once) -> output records.

No Kafka client or event loop here: :class:`SourcePipeline` turns a list of input records into
a list of :class:`Output` records, so the batch consumer, the Faust agents, the benchmarks and
the tests share exactly the same code path.

Every input ends as exactly one output: a ``predictions`` record (accepted) or a ``dead-letter``
record (rejected by the codec or the Runner). Alert transitions add ``anomaly-alerts`` records.

Reorder buffer (``SEQSTREAM_REORDER_GRACE_S`` > 0, off by default): accepted events are held per
stream until the stream's watermark (its newest event time minus the grace) passes them, then run
in event-time order; an event behind the watermark (or behind an event already run) is a dead
letter ``late``. A held event's prediction is emitted when it is released: by the watermark
(a function of the input alone, so a replay releases exactly the same events at the same
records), or by :meth:`SourcePipeline.tick` when it waited ``SEQSTREAM_REORDER_MAX_HOLD_S`` of
processing time or the buffer holds more than ``SEQSTREAM_REORDER_MAX_HELD`` events (the state
manager snapshots right after such a release). Held events are part of the partition snapshots.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import operator
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import orjson
import torch

from models import Batch, Runner
from models.checkpoint import load_checkpoint
from models.errors import ConfigError
from models.state import SlabSnapshot

from .codec import RecordLike, decode_batch, encode_alert, encode_dead, encode_predictions
from .metrics import Metrics
from .producer import Output
from .settings import Settings
from .state import HeldEvent, ParkedRow, ParkedStore

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
class _Ran:
    """What running some events through the Runner produced."""

    outputs: list[Output] = field(default_factory=list)
    dead: list[tuple[RecordLike, str, str]] = field(default_factory=list)
    event_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    n_pred: int = 0
    n_alerts: int = 0


_partition = operator.attrgetter("partition")
_timestamp = operator.attrgetter("timestamp")

# a held event in its stream's heap: (event time, partition, offset, sequence, event)
_Entry = tuple[float, int, int, int, HeldEvent]


def build_runner(settings: Settings, source: str) -> Runner:
    """Load a source's checkpoint with the configured device, capacity and threshold override."""
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

    # reorder buffer defaults, for subclasses that do not call __init__ (the audio source does not reorder)
    _reorder = False
    _n_held = 0

    def __init__(self, source: str, runner: Runner, settings: Settings, metrics: Metrics | None = None) -> None:
        self.source = source
        self.runner = runner
        self.settings = settings
        self.metrics = metrics
        self.model_id = runner.model_id
        self.threshold = float(runner.scoring.open_threshold)
        from .explorer import ring_store_for

        self.explorer = ring_store_for(source, runner, settings)  # /explorer ring buffers (None: off)
        # durable state: which input partition each stream lives on, and streams parked off the
        # slab (evicted by the resident bound; their state is kept and comes back on their next event)
        self.stream_part: dict[str, int] = {}
        self.parked: ParkedStore | dict[str, ParkedRow] = {}  # a ParkedStore from the first use (_store)
        self.parked_total = 0
        self.resets = 0
        self._init_reorder(settings)
        self._store()
        if metrics is not None:
            metrics.model_info.labels(source=source, model=self.model_id).set(1)
            self._observe_slab()

    def _init_reorder(self, settings: Settings) -> None:
        g = settings.reorder_grace_s
        if g > 0 and not settings.state_enabled:
            raise ConfigError(
                "SEQSTREAM_REORDER_GRACE_S > 0 needs SEQSTREAM_STATE_ENABLED=true: the events the reorder buffer "
                "holds are saved in the state snapshots, without them a crash would lose them; enable state or "
                "set SEQSTREAM_REORDER_GRACE_S=0"
            )
        self._reorder = g > 0
        self._grace = g
        self._max_hold = settings.reorder_max_hold_s or max(1.0, 2.0 * g)
        self._max_held = settings.reorder_max_held
        self._held: dict[str, list[_Entry]] = {}  # stream -> heap of its held events
        self._hi: dict[str, float] = {}  # stream -> newest event time seen (streams with held events)
        self._fifo: deque[tuple[float, str, tuple[float, int, int]]] = deque()  # (arrival, stream, order)
        self._n_held = 0
        self._seq = itertools.count()
        self.clock: Callable[[], float] = time.monotonic  # processing time of arrivals and max hold

    def _observe_slab(self) -> None:
        if self.metrics is not None:
            s = self.runner.slab
            self.metrics.observe_slab(self.source, len(s), s.nbytes, s.capacity, s.evictions)
            st = getattr(self, "parked", None)
            if isinstance(st, ParkedStore):
                self.metrics.parked_streams.labels(source=self.source, where="memory").set(st.n_memory)
                self.metrics.parked_streams.labels(source=self.source, where="disk").set(st.n_disk)

    def process(self, records: Sequence[RecordLike], now: float | None = None) -> BatchResult:
        """All outputs of a micro-batch (records of one source, per-partition offset order)."""
        s, src = self.settings, self.source
        now = time.time() if now is None else now
        dec = decode_batch(
            src,
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
        if not self._reorder:
            ran = self._run(dec.stream_ids, dec.ts, dec.x, recs)
            return self._finish(records, ran.outputs, dead, ran.event_ts, ran.n_pred, ran.n_alerts, dead_recs=ran.dead)
        released = self._hold(records, dec.stream_ids, dec.ts, dec.x, index, dead)
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

    def _run(self, ids: Sequence[str], ts: np.ndarray, x: np.ndarray, recs: Sequence[RecordLike]) -> _Ran:
        """Run events (``ids``/``ts``/``x`` aligned with their input records ``recs``) and encode the outputs."""
        s, src, m = self.settings, self.source, self.metrics
        out = _Ran()
        if not len(ids):
            return out
        reset = self._prepare(ids, ts)
        t0 = time.perf_counter()
        res = self.runner.process(Batch(ids, ts, x))
        if m is not None:
            m.inference_step.labels(source=src).observe(time.perf_counter() - t0)
        if self.explorer is not None:
            self.explorer.record(ids, ts, x, res, self.runner.slab, getattr(self, "parked", None))
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
                        threshold=self.threshold,
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
        out: _Ran,
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

    # -- reorder buffer ----------------------------------------------------------------------
    def _last_ts(self, sid: str) -> float:
        """Event time of the stream's last event run (resident or parked), -inf for a new stream."""
        slab = self.runner.slab
        k = slab.slot(sid)
        if k is not None:
            return float(slab.last_ts[k])
        row = self._store().get(sid)
        return float(row.last_ts) if row is not None else -np.inf

    def _hold(
        self,
        records: Sequence[RecordLike],
        ids: Sequence[str],
        ts: np.ndarray,
        x: np.ndarray,
        index: list[int],
        dead: list[tuple[int, str, str]],
    ) -> list[HeldEvent]:
        """Admit decoded events into the buffer (or dead letter ``late``); returns the released ones.

        Per event, in input order: ``floor = max(last event run, newest event time seen - grace)``;
        an event below the floor is late, else held. Then every touched stream releases its held
        events at or behind its watermark, in (event time, partition, offset) order. The result does
        not depend on how the input was cut into batches.
        """
        g, held, hi, fifo = self._grace, self._held, self._hi, self._fifo
        arrival = self.clock()
        lasts: dict[str, float] = {}
        touched: dict[str, None] = {}
        seq = self._seq
        for j, (sid, t) in enumerate(zip(ids, ts.tolist())):
            rec = records[index[j]]
            last = lasts.get(sid)
            if last is None:
                last = lasts[sid] = self._last_ts(sid)
            h = hi.get(sid)
            floor = last if h is None else max(last, h - g)
            if t < floor:
                dead.append(
                    (
                        index[j],
                        "late",
                        f"event time is {floor - t:.3f} s behind the stream's reorder watermark (its newest event "
                        f"time minus SEQSTREAM_REORDER_GRACE_S={g}, or an event already run); raise "
                        f"SEQSTREAM_REORDER_GRACE_S to accept events this late",
                    )
                )
                continue
            part, off = rec.partition, rec.offset
            ev = HeldEvent(sid, t, rec.topic, part, off, rec.timestamp, rec.key, rec.value, x[j])
            heap = held.get(sid)
            if heap is None:
                heap = held[sid] = []
            heapq.heappush(heap, (t, part, off, next(seq), ev))
            hi[sid] = t if h is None or t > h else h
            fifo.append((arrival, sid, (t, part, off)))
            self._n_held += 1
            touched[sid] = None
        out: list[HeldEvent] = []
        for sid in touched:
            self._pop(sid, (hi[sid] - g, np.iinfo(np.int64).max, 0), out)
        if len(fifo) > 4 * self._n_held + 4096:  # drop entries of events released by their watermark
            self._fifo = deque(e for e in fifo if (hp := held.get(e[1])) and hp[0][:3] <= e[2])
        return out

    def _pop(self, sid: str, upto: tuple[float, int, int], out: list[HeldEvent]) -> None:
        """Move the stream's held events ordered at or before ``upto`` to ``out`` (in order)."""
        heap = self._held.get(sid)
        if not heap:
            return
        n0 = len(out)
        while heap and heap[0][:3] <= upto:
            out.append(heapq.heappop(heap)[4])
        self._n_held -= len(out) - n0
        if not heap:
            del self._held[sid]
            self._hi.pop(sid, None)

    def _run_held(self, events: list[HeldEvent], cause: str) -> _Ran:
        if self.metrics is not None:
            self.metrics.reorder_held.labels(source=self.source).set(self._n_held)
            if events:
                self.metrics.reorder_released.labels(source=self.source, cause=cause).inc(len(events))
        if not events:
            return _Ran()
        ids = [e.stream for e in events]
        ts = np.fromiter((e.ts for e in events), np.float64, len(events))
        x = np.stack([e.x for e in events]).astype(np.float32, copy=False)  # [n, F]
        return self._run(ids, ts, x, cast(Sequence[RecordLike], events))  # frozen, but the same fields

    @property
    def n_held(self) -> int:
        """Events held by the reorder buffer."""
        return self._n_held

    def held_due(self, now: float | None = None) -> bool:
        """Whether :meth:`tick` would release something (an event waited its max hold, or overflow)."""
        if not self._reorder:
            return False
        fifo, held = self._fifo, self._held
        while fifo and not ((hp := held.get(fifo[0][1])) and hp[0][:3] <= fifo[0][2]):
            fifo.popleft()  # released by its watermark (or dropped) already
        if not fifo:
            return False
        now = self.clock() if now is None else now
        return fifo[0][0] <= now - self._max_hold or self._n_held > self._max_held

    def tick(self, now: float | None = None, only: Collection[int] | None = None) -> BatchResult | None:
        """Release held events that waited ``reorder_max_hold_s`` (processing time), and the oldest
        arrivals beyond ``reorder_max_held``; returns their outputs (``None``: nothing released).

        Releasing an event also releases the stream's held events ordered before it, and raises the
        stream's floor to it (later, older arrivals are ``late``). ``only``: release only streams of
        these input partitions (the others keep waiting). The caller must snapshot the released
        partitions before it processes further records of them (``StateManager.release_held``).
        """
        if not self._reorder or not self._fifo:
            return None
        now = self.clock() if now is None else now
        cutoff = now - self._max_hold
        fifo, held, sp = self._fifo, self._held, self.stream_part
        timed: list[HeldEvent] = []
        over: list[HeldEvent] = []
        skipped = []
        while fifo:
            arrival, sid, order = fifo[0]
            overflow = self._n_held > self._max_held
            if arrival > cutoff and not overflow:
                break
            fifo.popleft()
            heap = held.get(sid)
            if not heap or heap[0][:3] > order:  # released already
                continue
            if only is not None and sp.get(sid) not in only:
                skipped.append((arrival, sid, order))
                continue
            self._pop(sid, order, timed if arrival <= cutoff else over)
        fifo.extendleft(reversed(skipped))
        if not timed and not over:
            return None
        ran = self._run_held(timed, "max_hold")
        if over:
            more = self._run_held(over, "overflow")
            ran.outputs += more.outputs
            ran.dead += more.dead
            ran.n_pred += more.n_pred
            ran.n_alerts += more.n_alerts
            ran.event_ts = np.concatenate([ran.event_ts, more.event_ts])
        released = timed + over
        log.debug("reorder buffer of %s released %d event(s) on processing time", self.source, len(released))
        s, m, src = self.settings, self.metrics, self.source
        outputs = ran.outputs
        for rec, reason, msg in ran.dead:
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
        if m is not None:
            if ran.n_pred:
                m.events_out.labels(source=src, topic=s.topic_predictions).inc(ran.n_pred)
            if ran.n_alerts:
                m.events_out.labels(source=src, topic=s.topic_alerts).inc(ran.n_alerts)
            if ran.dead:
                m.events_out.labels(source=src, topic=s.topic_dead_letter).inc(len(ran.dead))
            self._observe_slab()
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
        if not self._reorder:
            return []
        sp = self.stream_part
        return [e[4] for sid, heap in self._held.items() if sp.get(sid) == partition for e in sorted(heap)]

    def _load_held(self, partition: int, events: Sequence[HeldEvent]) -> None:
        if not events:
            return
        if not self._reorder:
            raise ConfigError(
                f"the state snapshot of partition {partition} holds {len(events)} event(s) of a reorder buffer, but "
                "this worker runs with SEQSTREAM_REORDER_GRACE_S=0; start it with the reorder grace the "
                "previous owner had, or the held events would be lost"
            )
        arrival = self.clock()
        for e in events:
            heap = self._held.setdefault(e.stream, [])
            heapq.heappush(heap, (e.ts, e.partition, e.offset, next(self._seq), e))
            h = self._hi.get(e.stream)
            self._hi[e.stream] = e.ts if h is None or e.ts > h else h
            self._fifo.append((arrival, e.stream, e.order))
            self.stream_part[e.stream] = partition
            self._n_held += 1
        if self.metrics is not None:
            self.metrics.reorder_held.labels(source=self.source).set(self._n_held)

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
        s, m, src, n = self.settings, self.metrics, self.source, len(records)
        all_dead = [(records[i], reason, msg) for i, reason, msg in dead] + list(dead_recs)
        for rec, reason, msg in all_dead:
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
            if reason not in ("out_of_order", "late"):
                log.debug("dead letter %s:%s:%s %s: %s", rec.topic, rec.partition, rec.offset, reason, msg)
        if m is not None:
            m.events_in.labels(source=src).inc(n)
            m.batch_size.labels(source=src).observe(n)
            if n_pred:
                m.events_out.labels(source=src, topic=s.topic_predictions).inc(n_pred)
            if n_alerts:
                m.events_out.labels(source=src, topic=s.topic_alerts).inc(n_alerts)
            if all_dead:
                m.events_out.labels(source=src, topic=s.topic_dead_letter).inc(len(all_dead))
            self._observe_slab()
        if record_ts is None:
            record_ts = np.fromiter(map(_timestamp, records), np.float64, n) / 1000.0  # [n]
        return BatchResult(outputs, event_ts, record_ts, n, n_pred, len(all_dead), n_alerts, partitions)

    # -- durable state helpers (used by stream.state) ----------------------------------------
    def _store(self) -> ParkedStore:
        """The parked streams (a :class:`ParkedStore`; a subclass's plain dict is upgraded once)."""
        st = getattr(self, "parked", None)
        if isinstance(st, ParkedStore):
            return st
        slab = self.runner.slab
        store = ParkedStore(
            self.settings.park_dir,
            f"parked-{self.source}",
            memory_rows=self.settings.park_memory_streams,
            shape=tuple(slab.hidden.shape[1:]),
            aux_dim=int(slab.aux.shape[1]),
        )
        self.parked = store
        return store

    def _rows_snapshot(self, items: Sequence[tuple[str, ParkedRow]]) -> SlabSnapshot:
        slab = self.runner.slab
        if not items:
            return SlabSnapshot(
                (),
                torch.zeros((0, *slab.hidden.shape[1:])),
                torch.zeros((0, slab.aux.shape[1])),
                np.zeros(0, np.int64),
                np.zeros(0),
            )
        return SlabSnapshot(
            tuple(sid for sid, _ in items),
            torch.stack([r.hidden for _, r in items]),  # [N, L, K, H]
            torch.stack([r.aux for _, r in items]),  # [N, A]
            np.asarray([r.steps for _, r in items], np.int64),
            np.asarray([r.last_ts for _, r in items], np.float64),
        )

    def _prepare(self, stream_ids: Sequence[str], ts: np.ndarray) -> set[str]:
        """Before a batch: unpark returning streams, gap resets, the resident bound (park LRU streams)."""
        s, slab = self.settings, self.runner.slab
        store = self._store()
        batch = list(dict.fromkeys(stream_ids))
        back: dict[str, ParkedRow] = {}
        if len(store):  # streams coming back from the parked store
            resident = slab.slot_of  # membership without a method call per id
            away = [sid for sid in batch if sid not in resident]
            back = store.take_many(away) if away else {}
        reset: set[str] = set()
        if s.max_gap_s is not None:
            first: dict[str, float] = {}
            for sid, t in zip(stream_ids, ts.tolist()):
                first.setdefault(sid, t)
            for sid, t in first.items():
                k = slab.slot(sid)
                row = back.get(sid) if k is None else None
                last = float(slab.last_ts[k]) if k is not None else row.last_ts if row is not None else -np.inf
                if np.isfinite(last) and t - last > s.max_gap_s:
                    reset.add(sid)
            if reset:
                slab.evict(list(reset))
                for sid in reset:
                    back.pop(sid, None)
                self.resets += len(reset)
                log.debug("gap reset of %d stream(s) of %s", len(reset), self.source)
        cap = s.max_resident_streams
        if cap is not None:
            incoming = [sid for sid in batch if sid not in slab]
            excess = len(slab) + len(incoming) - cap
            if excess > 0:
                protect = np.fromiter(
                    (k for k in map(slab.slot, batch) if k is not None), np.int64
                )  # this batch's resident streams stay
                victims = slab.ids_at(slab.lru_slots(excess, exclude=protect))
                self._park([v for v in victims if v is not None])
        if back:
            slab.restore(self._rows_snapshot(list(back.items())), replace=False)
        return reset

    def _park(self, ids: list[str]) -> None:
        """Move streams off the slab into the parked store (their partition moves with them)."""
        if not ids:
            return
        snap = self.runner.slab.snapshot(ids)
        sp, held = self.stream_part, self._held if self._reorder else {}
        rows = []
        for i, sid in enumerate(snap.stream_ids):
            part = sp.get(sid, -1) if sid in held else sp.pop(sid, -1)  # keeps stream_part bounded
            rows.append(
                (
                    sid,
                    ParkedRow(
                        part, snap.hidden[i].clone(), snap.aux[i].clone(), int(snap.steps[i]), float(snap.last_ts[i])
                    ),
                )
            )
        self._store().put_many(rows)
        self.runner.slab.evict(list(snap.stream_ids))
        self.parked_total += len(snap.stream_ids)

    def streams_of(self, partition: int) -> list[str]:
        """Streams of one input partition: resident (and held) ones, then parked ones."""
        ids = [sid for sid, p in self.stream_part.items() if p == partition]
        return list(dict.fromkeys(ids + self._store().ids_of(partition)))

    def partition_snapshot(self, partition: int) -> SlabSnapshot:
        """State of every stream of one input partition (resident and parked)."""
        from .state import concat_snapshots

        slab = self.runner.slab
        resident = slab.snapshot([sid for sid, p in self.stream_part.items() if p == partition and sid in slab])
        parked = [(sid, row) for sid, row in self._store().rows_of(partition) if sid not in slab]
        return concat_snapshots([resident, self._rows_snapshot(parked)]) if parked else resident

    def drop_partition(self, partition: int) -> int:
        """Forget every stream of a partition (it moved to another worker); not counted as evictions."""
        ids = [sid for sid, p in self.stream_part.items() if p == partition]
        self.runner.slab.evict(ids, count=False)
        for sid in ids:
            self.stream_part.pop(sid, None)
        n = len(ids) + self._store().drop_partition(partition)
        if self._reorder:
            for sid in ids:
                heap = self._held.pop(sid, None)
                if heap:
                    self._n_held -= len(heap)
                self._hi.pop(sid, None)
            if self.metrics is not None:
                self.metrics.reorder_held.labels(source=self.source).set(self._n_held)
        self._observe_slab()
        return n

    def load_partition(self, partition: int, snap: SlabSnapshot, held: Sequence[HeldEvent] = ()) -> None:
        """Load a partition snapshot (into the slab, or parked when a resident bound is set) and the
        events its reorder buffer held."""
        self.drop_partition(partition)
        if self.settings.max_resident_streams is not None:
            store = self._store()
            for lo in range(0, len(snap), 10_000):  # parked, spilling to disk beyond park_memory_streams
                hi = min(len(snap), lo + 10_000)
                store.put_many(
                    [
                        (
                            snap.stream_ids[i],
                            ParkedRow(
                                partition,
                                snap.hidden[i].clone(),
                                snap.aux[i].clone(),
                                int(snap.steps[i]),
                                float(snap.last_ts[i]),
                            ),
                        )
                        for i in range(lo, hi)
                    ]
                )
        elif len(snap):
            for sid in snap.stream_ids:
                self.stream_part[sid] = partition
            self.runner.slab.restore(snap, replace=False)
        self._load_held(partition, held)
        self._observe_slab()

    def close(self) -> None:
        """Release the parked store's file (the state itself lives in the changelog)."""
        st = getattr(self, "parked", None)
        if isinstance(st, ParkedStore):
            st.close()
