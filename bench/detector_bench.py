"""Detector cost and GRU vs LSTM comparison.

* Throughput: stream-steps/s of the plain forecaster (``model.step``) and of the full detector
  (slab gather + normalise + step + score/alert policy + scatter), measured in the same run for
  each batch size (:func:`models.evaluate.bench_detector`).
* ``--compare CKPT ...``: per checkpoint, NAB score (lock-step path: the detection signal that
  ``evaluate nab`` scores; ``--scoring``: the plain ``ScoringConfig()``, each checkpoint's own, or a
  named scoring (``calibrated``, ``context``) for all, so cells trained apart are scored alike) at the
  config's threshold and swept, parameters, FLOPs/step, batch-1 step latency and slab bytes per stream.

Usage (from the repository root)::

    python bench/detector_bench.py                                   # throughput, bundled checkpoint
    python bench/detector_bench.py --compare a_gru.pt b_lstm.pt --scoring calibrated   # comparison table
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.evaluate import bench_detector, load_corpus_series, lockstep_scores
from models.nab import NabCorpus
from models.replay import read_csv
from models.runner import Runner
from models.scoring_config import named_scoring

NAB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab-dev"


def throughput(checkpoint: str | None, batches: tuple[int, ...], seconds: float) -> None:
    rows = bench_detector(checkpoint, batches, seconds)
    print("| batch | forecaster steps/s | detector steps/s | detector / forecaster time |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['batch']} | {r['model_steps_per_s']:,.0f} | {r['detector_steps_per_s']:,.0f} "
            f"| {r['detector_cost']:.2f}x |"
        )


@torch.inference_mode()
def _latency_us(runner: Runner, reps: int = 2000) -> tuple[float, float]:
    x = torch.zeros(1, runner.n_features + runner.scorer.n_phases)  # context scoring: phase columns travel along
    x_model = torch.zeros(1, runner.model.config.input_size)  # what the cell itself takes
    h = runner.model.zero_state(1)
    idx = torch.from_numpy(runner.slab.assign(["s"], np.zeros(1)))
    out = []
    for fn in (lambda: runner.model.step(x_model, h), lambda: runner._wave(idx, x)):
        for _ in range(100):
            fn()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        out.append((time.perf_counter() - t) / reps * 1e6)
    return out[0], out[1]


def compare(checkpoints: list[str], scoring_mode: str) -> None:
    corpus = NabCorpus.load(NAB / "data", NAB / "combined_windows.json")
    series = load_corpus_series(NAB / "data", corpus.files)
    times = [read_csv(NAB / "data" / rel).ts for rel in corpus.files]
    print(
        "| checkpoint | cell | params | FLOPs/step | NAB standard / low FP / low FN (fixed threshold) | standard swept "
        "| step latency B=1 (model / detector) | bytes per stream |"
    )
    print("|---|---|---:|---:|---|---:|---|---:|")
    for path in checkpoints:
        ck = load_checkpoint(path)
        scoring = ck.scoring if scoring_mode == "own" else named_scoring(scoring_mode)
        det = dict(zip(corpus.files, lockstep_scores(ck.model, scoring, series, times)))
        res = corpus.score(det, threshold=scoring.open_threshold)
        swept = corpus.score(det)["standard"].normalized
        runner = Runner(ck.model, scoring, device="cpu", capacity=1)
        m_us, d_us = _latency_us(runner)
        params = sum(p.numel() for p in ck.model.parameters())
        nab = " / ".join(f"{r.normalized:.2f}" for r in res.values())
        print(
            f"| {Path(path).name} | {ck.model.config.cell} h{ck.model.config.hidden_size} | {params:,} "
            f"| {ck.model.flops_per_step():,} | {nab} | {swept:.2f} | {m_us:.0f} µs / {d_us:.0f} µs "
            f"| {runner.slab.bytes_per_stream} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--batches", default="1,16,256,4096")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compare", nargs="+", default=None, help="checkpoints to compare on NAB dev")
    ap.add_argument(
        "--scoring", choices=["plain", "own", "context", "calibrated"], default="plain", help="scoring for --compare"
    )
    ap.add_argument("--own-scoring", action="store_true", help="the same as --scoring own")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare:
        compare(args.compare, "own" if args.own_scoring else args.scoring)
    else:
        throughput(args.checkpoint, tuple(int(b) for b in args.batches.split(",")), args.seconds)


if __name__ == "__main__":
    main()
