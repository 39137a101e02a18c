"""Detector evaluation: NAB scoring of a replay, and detector vs forecaster throughput.

:func:`evaluate_nab` is the product path: every labelled file is replayed through one
:class:`~models.runner.Runner` as concurrent streams (:func:`models.replay.replay_path`), the
result files are written, read back and scored with :mod:`models.nab` (one threshold fixed in
advance: the scoring config's ``open_threshold``, and the threshold swept over the corpus). With
``protocol=True`` it also runs the leave-one-category-out protocol and the sensitivity table
(:mod:`models.protocol`).

What NAB scores is the detector's *detection signal*
(:func:`~models.scoring_config.detection_signal`): with the calibrated scoring, whose score is the
evidence and stays high while an anomaly goes on, that is the score at the events where an alert
opened (0 elsewhere): the product's detections; with the older scorings, whose score is zeroed
after an alert, it is the score itself.

:func:`lockstep_scores` runs the same scorer and model over whole series in lock-step (one batched
step per time index, each series one stream). Per-stream results do not depend on batching, so it
gives the replay's scores (to float rounding) several times faster; it is for experiments.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .nab import NabCorpus, NabResult, format_table, read_scores
from .nets import RecurrentForecaster
from .protocol import DevSet, ProtocolReport, run_protocol
from .replay import read_csv, replay_path
from .runner import Runner
from .scoring import Scorer
from .scoring_config import ScoringConfig, detection_signal
from .types import Batch, Results

__all__ = ["NabReport", "bench_detector", "evaluate_nab", "lockstep_scores"]


class _Detections:
    """A Runner whose results carry the detection signal as their score (what the NAB files hold)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.n_features = runner.n_features

    def process(self, batch: Batch) -> Results:
        res = self.runner.process(batch)
        res.score = detection_signal(self.runner.scoring, res.score, res.transition)
        return res


@dataclass
class NabReport:
    swept: dict[str, NabResult]
    fixed: dict[str, NabResult]
    fixed_threshold: float
    events: int
    seconds: float
    results_dir: Path | None
    meta: dict[str, Any] = field(default_factory=dict)
    protocol: ProtocolReport | None = None

    def table(self) -> str:
        t = format_table({f"fixed {self.fixed_threshold:g}": self.fixed, "swept": self.swept})
        return t if self.protocol is None else f"{self.protocol.table()}\n\nall dev, replayed through the Runner:\n{t}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "swept": {k: v.to_dict() for k, v in self.swept.items()},
            "fixed": {k: v.to_dict() for k, v in self.fixed.items()},
            "fixed_threshold": self.fixed_threshold,
            "events": self.events,
            "seconds": self.seconds,
            **({"protocol": self.protocol.to_dict()} if self.protocol is not None else {}),
            **self.meta,
        }


def evaluate_nab(
    data_dir: str | Path,
    labels: str | Path,
    output: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    scoring: ScoringConfig | None = None,
    threshold: float | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = False,
    protocol: bool = False,
) -> NabReport:
    """Replay ``data_dir`` through one Runner and score the results against NAB ``labels``; with
    ``protocol``, also the leave-one-category-out protocol and the sensitivity table."""
    ckpt = load_checkpoint(checkpoint)
    scoring = scoring or ckpt.scoring
    runner = Runner(ckpt.model, scoring, device=device, model_id=ckpt.model_id)
    corpus = NabCorpus.load(data_dir, labels)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(output) if output is not None else Path(tmp)
        t0 = time.perf_counter()
        det = _Detections(runner)
        report = replay_path(data_dir, out, runner=det, batch_size=batch_size, progress=progress)  # type: ignore[arg-type]
        seconds = time.perf_counter() - t0
        scores = read_scores(out, corpus.files)
    fixed_thr = scoring.open_threshold if threshold is None else float(threshold)
    proto = None
    if protocol:
        proto = run_protocol(DevSet(data_dir, corpus, ckpt.model, scoring), scoring)
    return NabReport(
        swept=corpus.score(scores),
        fixed=corpus.score(scores, threshold=fixed_thr),
        fixed_threshold=fixed_thr,
        events=report.accepted,
        seconds=seconds,
        results_dir=Path(output) if output is not None else None,
        meta={"model_id": ckpt.model_id, "scoring": scoring.to_dict()},
        protocol=proto,
    )


@torch.inference_mode()
def lockstep_scores(
    model: RecurrentForecaster,
    scoring: ScoringConfig,
    series: list[np.ndarray],
    times: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """NAB detection signals (:func:`detection_signal`: what :func:`evaluate_nab` scores) of whole
    series ``[T, F]``, one stream each, stepped together (no look-ahead).

    ``times`` (epoch s per row) are needed when the scoring has season or profile channels.
    """
    f = series[0].shape[1]
    scorer = Scorer(scoring, f)
    if scorer.n_phases:
        if times is None:
            raise ValueError("this scoring config has season/profile channels: pass the row times")
        series = [np.concatenate((s, scorer.phases(t)), 1) for s, t in zip(series, times)]
    n, t_max = len(series), max(len(s) for s in series)
    p = scorer.n_phases
    xs = np.zeros((t_max, n, f + p), np.float32)
    lengths = np.array([len(s) for s in series])
    for i, s in enumerate(series):
        xs[: len(s), i] = s
    x = torch.from_numpy(xs)  # [T, S, F]
    aux = scorer.init_row().expand(n, -1).clone()  # [S, A]
    h = model.zero_state(n)  # [S, L, K, H]
    out = np.zeros((t_max, n), np.float32)
    trans = np.zeros((t_max, n), np.float32)
    cols = [scorer.SCORE, scorer.TRANSITION]
    for t in range(t_max):
        idx = torch.from_numpy(np.flatnonzero(lengths > t))  # [s]
        if len(idx) == n:
            x_n, err = scorer.pre(aux, x[t, :, :f], x[t, :, f:] if p else None)
            fc, h = model.step(x_n, h)
            out[t], trans[t] = scorer.post(aux, err, fc)[:, cols].numpy().T
        else:
            a, hh = aux[idx], h[idx]
            x_n, err = scorer.pre(a, x[t, idx, :f], x[t, idx, f:] if p else None)
            fc, hh = model.step(x_n, hh)
            out[t, idx.numpy()], trans[t, idx.numpy()] = scorer.post(a, err, fc)[:, cols].numpy().T
            aux[idx], h[idx] = a, hh
    return [detection_signal(scoring, out[: len(s), i].copy(), trans[: len(s), i]) for i, s in enumerate(series)]


def load_corpus_series(data_dir: str | Path, files: list[str]) -> list[np.ndarray]:
    """The value columns of each file, in row order (every row must parse)."""
    out = []
    for rel in files:
        t = read_csv(Path(data_dir) / rel)
        out.append(t.x)
    return out


def bench_detector(
    checkpoint: str | Path | None = None,
    batch_sizes: tuple[int, ...] = (1, 16, 256, 4096),
    seconds: float = 1.0,
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Stream-steps/s of the plain forecaster (``model.step``) and of the full detector
    (normalise + step + score + slab gather/scatter, :meth:`Runner._wave`), measured in the same run."""
    ckpt = load_checkpoint(checkpoint)
    rows = []
    for b in batch_sizes:
        runner = Runner(ckpt.model, ckpt.scoring, device=device, capacity=b)
        dev = runner.device
        ids = [f"s{i}" for i in range(b)]
        idx = torch.from_numpy(runner.slab.assign(ids, np.zeros(b))).to(dev)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(b, runner.n_features, generator=gen)  # [B, F]
        if runner.scorer.n_phases:  # the event-time buckets the Runner appends (Scorer.phases)
            ts = 1.7e9 + torch.rand(b, generator=gen, dtype=torch.float64).numpy() * 604800.0
            x = torch.cat((x, torch.from_numpy(runner.scorer.phases(ts))), 1)  # [B, F + P]
        x = x.to(dev)
        h = runner.model.zero_state(b, dev)  # [B, L, K, H]

        rate = {
            "model": _rate(lambda r=runner, x=x[:, : runner.n_features], h=h: r.model.step(x, h), b, seconds, dev),
            "detector": _rate(lambda r=runner, i=idx, x=x: r._wave(i, x), b, seconds, dev),
        }
        rows.append(
            {
                "batch": b,
                "model_steps_per_s": rate["model"],
                "detector_steps_per_s": rate["detector"],
                "detector_cost": rate["model"] / rate["detector"],
            }
        )
    return rows


@torch.inference_mode()
def _rate(fn: Any, b: int, seconds: float, dev: torch.device) -> float:
    for _ in range(5):
        fn()
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(10):
            fn()
        n += 10
        if dev.type == "cuda":
            torch.cuda.synchronize()
        el = time.perf_counter() - t0
        if el >= seconds:
            return n * b / el
