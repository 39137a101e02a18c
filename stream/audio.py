"""The ``audio`` source: 16 kHz PCM frames on ``speech-audio`` through batched Silero VAD.

Per input frame one ``predictions`` record: ``prediction = [speech probability]``, ``score`` =
the probability, ``anomaly`` = whether the stream is in speech after this frame. Speech
transitions go to ``anomaly-alerts``: ``state = "open"`` with ``event = "speech_start"`` and
``state = "resolved"`` with ``event = "speech_end"``; ``boundary_ts`` is the event time where the
speech starts (the first speech frame) or ends (the first silent frame, ``frames_ago`` frames
before the record that confirmed it). Bad frames go to ``dead-letter`` like every source.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib import metadata

import numpy as np

from models.silero import FRAME, SileroVAD, VadRunner

from .codec import RecordLike, decode_batch, encode_alert, encode_prediction
from .metrics import Metrics
from .pipeline import BatchResult, Output, SourcePipeline
from .settings import Settings
from .sources import SOURCES

__all__ = ["AudioPipeline", "build_vad_runner"]


def _model_id() -> str:
    try:
        return f"silero-vad-{metadata.version('silero-vad')}"
    except metadata.PackageNotFoundError:
        return "silero-vad"


def build_vad_runner(settings: Settings) -> VadRunner:
    """The Silero weights (``SEQSTREAM_CHECKPOINT_AUDIO`` or the installed package) on the configured device."""
    from models.runner import resolve_device

    vad = SileroVAD.pretrained(settings.checkpoint("audio"))
    return VadRunner(
        vad,
        threshold=settings.vad_threshold,
        min_silence_ms=settings.vad_min_silence_ms,
        device=resolve_device(settings.device),
        capacity=settings.slab_capacity,
        max_capacity=settings.slab_max_capacity,
    )


class AudioPipeline(SourcePipeline):
    """Decode PCM frames, run :class:`VadRunner` once per micro-batch, encode outputs.

    Shares the durable-state helpers of :class:`SourcePipeline` (partition snapshots, parking,
    gap resets): the VAD state lives in the same kind of :class:`~models.state.StateSlab`.
    """

    def __init__(self, runner: VadRunner, settings: Settings, metrics: Metrics | None = None) -> None:
        self.source = "audio"
        self.runner = runner  # type: ignore[assignment]
        self.settings = settings
        self.metrics = metrics
        self.model_id = _model_id()
        self.threshold = runner.threshold
        self.explorer = None
        self.stream_part: dict[str, int] = {}
        self.parked = {}
        self.parked_total = 0
        self.resets = 0
        if metrics is not None:
            metrics.model_info.labels(source=self.source, model=self.model_id).set(1)
            self._observe_slab()

    def process(self, records: Sequence[RecordLike], now: float | None = None) -> BatchResult:
        s, src, m = self.settings, self.source, self.metrics
        vad: VadRunner = self.runner  # type: ignore[assignment]
        now = time.time() if now is None else now
        dec = decode_batch(
            SOURCES[src],
            records,
            n_features=FRAME,
            now=now,
            max_future_s=s.max_future_s,
            max_payload_bytes=s.max_payload_bytes,
        )
        dead = list(dec.errors)
        outputs: list[Output] = []
        n_pred = n_alerts = 0
        event_ts = np.zeros(0, np.float64)
        if len(dec.index):
            # out-of-order frames (older than the stream's last frame) are dead letters, like the Runner's
            last: dict[str, float] = {}
            keep = np.ones(len(dec.index), bool)
            for j, (sid, t) in enumerate(zip(dec.stream_ids, dec.ts.tolist())):
                if sid not in last:
                    k = vad.slab.slot(sid)
                    last[sid] = float(vad.slab.last_ts[k]) if k is not None else -np.inf
                if t < last[sid]:
                    keep[j] = False
                    dead.append((int(dec.index[j]), "out_of_order", "event time is older than the stream's last event"))
                else:
                    last[sid] = t
            rows = np.flatnonzero(keep)
            ids = [dec.stream_ids[j] for j in rows]
            ts = dec.ts[rows]
            index = dec.index[rows]
            for j, sid in zip(index.tolist(), ids):
                self.stream_part[sid] = records[j].partition
            reset = self._prepare(ids, ts) if ids else set()
            t0 = time.perf_counter()
            res = vad.process_frames(ids, ts, dec.x[rows]) if ids else None
            if m is not None:
                m.inference_step.labels(source=src).observe(time.perf_counter() - t0)
            if res is not None:
                probs, speaking, tss = res.prob.tolist(), res.speaking.tolist(), ts.tolist()
                for j, sid in enumerate(ids):
                    value = encode_prediction(
                        records[int(index[j])],
                        stream=sid,
                        source=src,
                        ts=tss[j],
                        model=self.model_id,
                        prediction=[probs[j]],
                        score=probs[j],
                        anomaly=speaking[j],
                    )
                    if sid in reset:
                        reset.discard(sid)
                        value = value[:-1] + b',"reset":"gap"}'
                    outputs.append(Output(s.topic_predictions, sid.encode(), value, records[int(index[j])].partition))
                n_pred = len(ids)
                for e in res.events:
                    start = e.kind == "start"
                    state = "open" if start else "resolved"
                    what = "speech started" if start else f"speech ended {e.frames_ago} frame(s) before this frame"
                    outputs.append(
                        Output(
                            s.topic_alerts,
                            e.stream_id.encode(),
                            encode_alert(
                                records[int(index[e.index])],
                                stream=e.stream_id,
                                source=src,
                                ts=e.ts,
                                model=self.model_id,
                                state=state,
                                score=e.prob,
                                threshold=vad.threshold if start else vad.neg_threshold,
                                expected=[],
                                actual=[e.prob],
                                explanation=f"{what} at {e.boundary_ts:.3f} (speech probability {e.prob:.3f}; "
                                f"start >= {vad.threshold:.2f}, end < {vad.neg_threshold:.2f})",
                                extra={
                                    "event": "speech_start" if start else "speech_end",
                                    "boundary_ts": e.boundary_ts,
                                    "frames_ago": e.frames_ago,
                                },
                            ),
                            records[int(index[e.index])].partition,
                        )
                    )
                    n_alerts += 1
                    if m is not None:
                        m.alerts.labels(source=src, state=state).inc()
                event_ts = ts
        return self._finish(records, outputs, dead, event_ts, n_pred, n_alerts)
