"""One source's work on a micro-batch: decode -> ``Runner.process`` (once) -> output records.

No Kafka client or event loop here: :class:`SourcePipeline` turns a list of input records into
a list of :class:`Output` records, so the batch consumer, the Faust agents, the benchmarks and
the tests share exactly the same code path.

Every input ends as exactly one output: a ``predictions`` record (accepted) or a ``dead-letter``
record (rejected by the codec or the Runner). Alert transitions add ``anomaly-alerts`` records.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import torch

from models import Batch, Runner
from models.checkpoint import load_checkpoint
from models.state import SlabSnapshot

from .codec import RecordLike, decode_batch, encode_alert, encode_dead, encode_prediction
from .metrics import Metrics
from .settings import Settings

__all__ = ["Output", "SourcePipeline", "build_runner"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Output:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes


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
        self.parked: dict[str, tuple[torch.Tensor, torch.Tensor, int, float]] = {}
        self.parked_total = 0
        self.resets = 0
        if metrics is not None:
            metrics.model_info.labels(source=source, model=self.model_id).set(1)
            self._observe_slab()

    def _observe_slab(self) -> None:
        if self.metrics is not None:
            s = self.runner.slab
            self.metrics.observe_slab(self.source, len(s), s.nbytes, s.capacity, s.evictions)

    def process(self, records: Sequence[RecordLike], now: float | None = None) -> BatchResult:
        """All outputs of a micro-batch (records of one source, per-partition offset order)."""
        s, src, m = self.settings, self.source, self.metrics
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
        outputs: list[Output] = []
        n_pred = n_alerts = 0
        event_ts = np.zeros(0, np.float64)
        reset: set[str] = set()
        if len(dec.index):
            sp = self.stream_part
            for j, sid in zip(dec.index.tolist(), dec.stream_ids):
                sp[sid] = records[j].partition
            reset = self._prepare(dec.stream_ids, dec.ts)
            t0 = time.perf_counter()
            res = self.runner.process(Batch(dec.stream_ids, dec.ts, dec.x))
            if m is not None:
                m.inference_step.labels(source=src).observe(time.perf_counter() - t0)
            if self.explorer is not None:
                self.explorer.record(
                    dec.stream_ids, dec.ts, dec.x, res, self.runner.slab, getattr(self, "parked", None)
                )
            preds = res.prediction.tolist()  # [n][F]
            scores = res.score.tolist()
            anomalies = res.anomaly.tolist()
            tss = dec.ts.tolist()
            topic_p = s.topic_predictions
            for j, ok in enumerate(res.accepted.tolist()):
                rec = records[int(dec.index[j])]
                if not ok:
                    reason = res.reason[j] or "rejected"
                    msg = (
                        "event time is older than the stream's last event"
                        if reason == "out_of_order"
                        else "the model rejected the input as non-finite"
                    )
                    if reason == "out_of_order" and s.late_grace_s is not None:
                        k = self.runner.slab.slot(dec.stream_ids[j])
                        last = float(self.runner.slab.last_ts[k]) if k is not None else -np.inf
                        if tss[j] < last - s.late_grace_s:
                            reason = "late"
                            msg = (
                                f"event time is {last - tss[j]:.3f} s older than the stream's last event "
                                f"(grace {s.late_grace_s} s)"
                            )
                    dead.append((int(dec.index[j]), reason, msg))
                    continue
                stream = dec.stream_ids[j]
                value = encode_prediction(
                    rec,
                    stream=stream,
                    source=src,
                    ts=tss[j],
                    model=self.model_id,
                    prediction=preds[j],
                    score=scores[j],
                    anomaly=anomalies[j],
                )
                if stream in reset:  # the first prediction after a gap reset says so
                    reset.discard(stream)
                    value = orjson.dumps({**orjson.loads(value), "reset": "gap"})
                outputs.append(Output(topic_p, stream.encode(), value))
                n_pred += 1
            for a in res.alerts:
                rec = records[int(dec.index[a.index])]
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
                        ),
                    )
                )
                n_alerts += 1
                if m is not None:
                    m.alerts.labels(source=src, state=a.state).inc()
            event_ts = dec.ts[res.accepted]  # [n_accepted]
        return self._finish(records, outputs, dead, event_ts, n_pred, n_alerts)

    def _finish(
        self,
        records: Sequence[RecordLike],
        outputs: list[Output],
        dead: list[tuple[int, str, str]],
        event_ts: np.ndarray,
        n_pred: int,
        n_alerts: int,
    ) -> BatchResult:
        """Dead letters, batch metrics and the result: the common tail of every source's batch."""
        s, m, src, n = self.settings, self.metrics, self.source, len(records)
        for i, reason, msg in dead:
            rec = records[i]
            outputs.append(
                Output(s.topic_dead_letter, rec.key, encode_dead(rec, source=src, reason=reason, message=msg))
            )
            if m is not None:
                m.dead_letters.labels(source=src, reason=reason).inc()
            if reason not in ("out_of_order",):
                log.debug("dead letter %s:%s:%s %s: %s", rec.topic, rec.partition, rec.offset, reason, msg)
        if m is not None:
            m.events_in.labels(source=src).inc(n)
            m.batch_size.labels(source=src).observe(n)
            if n_pred:
                m.events_out.labels(source=src, topic=s.topic_predictions).inc(n_pred)
            if n_alerts:
                m.events_out.labels(source=src, topic=s.topic_alerts).inc(n_alerts)
            if dead:
                m.events_out.labels(source=src, topic=s.topic_dead_letter).inc(len(dead))
            self._observe_slab()
        record_ts = np.fromiter((r.timestamp for r in records), np.float64, n) / 1000.0  # [n]
        return BatchResult(outputs, event_ts, record_ts, n, n_pred, len(dead), n_alerts)

    # -- durable state helpers (used by stream.state_store) ----------------------------------
    def _prepare(self, stream_ids: Sequence[str], ts: np.ndarray) -> set[str]:
        """Before a batch: gap resets, the resident bound (park LRU streams), unpark returning streams."""
        s, slab = self.settings, self.runner.slab
        batch = list(dict.fromkeys(stream_ids))
        reset: set[str] = set()
        if s.max_gap_s is not None:
            first: dict[str, float] = {}
            for sid, t in zip(stream_ids, ts.tolist()):
                first.setdefault(sid, t)
            for sid, t in first.items():
                k = slab.slot(sid)
                last = (
                    float(slab.last_ts[k]) if k is not None else self.parked[sid][3] if sid in self.parked else -np.inf
                )
                if np.isfinite(last) and t - last > s.max_gap_s:
                    reset.add(sid)
            if reset:
                slab.evict(list(reset))
                for sid in reset:
                    self.parked.pop(sid, None)
                self.resets += len(reset)
                log.debug("gap reset of %d stream(s) of %s", len(reset), self.source)
        cap = s.max_resident_streams
        if cap is not None:
            incoming = [sid for sid in batch if sid not in slab]
            excess = len(slab) + len(incoming) - cap
            if excess > 0:
                protect = {slab.slot(sid) for sid in batch} - {None}
                live = [k for k in (slab.slot(x) for x in slab.stream_ids()) if k is not None and k not in protect]
                if live:
                    order = np.asarray(live, np.int64)
                    victims_k = order[np.argsort(slab.last_used[order], kind="stable")[:excess]]
                    victims = [slab._ids[int(k)] for k in victims_k]
                    self._park([v for v in victims if v is not None])
        back = [sid for sid in batch if sid in self.parked and sid not in slab]
        if back:
            slab.restore(self._parked_snapshot(back, pop=True), replace=False)
        return reset

    def _park(self, ids: list[str]) -> None:
        if not ids:
            return
        snap = self.runner.slab.snapshot(ids)
        for i, sid in enumerate(snap.stream_ids):
            self.parked[sid] = (snap.hidden[i].clone(), snap.aux[i].clone(), int(snap.steps[i]), float(snap.last_ts[i]))
        self.runner.slab.evict(list(snap.stream_ids))
        self.parked_total += len(snap.stream_ids)

    def _parked_snapshot(self, ids: list[str], pop: bool = False) -> SlabSnapshot:
        rows = [self.parked.pop(i) if pop else self.parked[i] for i in ids]
        slab = self.runner.slab
        if not rows:
            return SlabSnapshot(
                (),
                torch.zeros((0, *slab.hidden.shape[1:])),
                torch.zeros((0, slab.aux.shape[1])),
                np.zeros(0, np.int64),
                np.zeros(0),
            )
        return SlabSnapshot(
            tuple(ids),
            torch.stack([r[0] for r in rows]),  # [N, L, K, H]
            torch.stack([r[1] for r in rows]),  # [N, A]
            np.asarray([r[2] for r in rows], np.int64),
            np.asarray([r[3] for r in rows], np.float64),
        )

    def streams_of(self, partition: int) -> list[str]:
        return [sid for sid, p in self.stream_part.items() if p == partition]

    def partition_snapshot(self, partition: int) -> SlabSnapshot:
        """State of every stream of one input partition (resident and parked)."""
        from .state_store import concat_snapshots

        ids = self.streams_of(partition)
        slab = self.runner.slab
        resident = slab.snapshot([i for i in ids if i in slab])
        parked = [i for i in ids if i in self.parked and i not in slab]
        return concat_snapshots([resident, self._parked_snapshot(parked)]) if parked else resident

    def drop_partition(self, partition: int) -> int:
        """Forget every stream of a partition (it moved to another worker); not counted as evictions."""
        ids = self.streams_of(partition)
        self.runner.slab.evict(ids, count=False)
        for sid in ids:
            self.stream_part.pop(sid, None)
            self.parked.pop(sid, None)
        self._observe_slab()
        return len(ids)

    def load_partition(self, partition: int, snap: SlabSnapshot) -> None:
        """Load a partition snapshot (into the slab, or parked when a resident bound is set)."""
        self.drop_partition(partition)
        for sid in snap.stream_ids:
            self.stream_part[sid] = partition
        if self.settings.max_resident_streams is not None:
            for i, sid in enumerate(snap.stream_ids):
                self.parked[sid] = (
                    snap.hidden[i].clone(),
                    snap.aux[i].clone(),
                    int(snap.steps[i]),
                    float(snap.last_ts[i]),
                )
        elif len(snap):
            self.runner.slab.restore(snap, replace=False)
        self._observe_slab()
