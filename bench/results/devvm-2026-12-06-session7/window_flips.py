"""Experiment (issue 18): which NAB dev windows flip, detected <-> missed, when one free parameter of the
bundled detector moves by -25 % / +25 % (the sensitivity table of docs/accuracy.md, window by window).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-06-session7/window_flips.py [NAME ...]

A window counts as detected when the detection signal (models.scoring_config.detection_signal) reaches
the threshold on one of its rows after NAB's probation; FP rows are such rows outside every window.
Uses models.protocol.DevSet (the GRU's forecasts cached once, the scorer re-run per configuration).
"""

import sys

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.nab import NabCorpus
from models.protocol import FREE_PARAMETERS, DevSet
from models.scoring_config import ScoringConfig

DATA = "../shared/data/nab-dev/data"
LABELS = "../shared/data/nab-dev/combined_windows.json"


def windows_hit(dev: DevSet, corpus: NabCorpus, sc: ScoringConfig) -> tuple[dict[tuple[str, int], bool], int, float]:
    det = dev.detections(sc)
    hit: dict[tuple[str, int], bool] = {}
    fp = 0
    for f in dev.files:
        win, mask = corpus._win[f], corpus._mask[f]
        d = det[f] >= sc.open_threshold
        for w in np.unique(win[win >= 0]):
            hit[(f, int(w))] = bool((d & (win == w) & mask).any())
        fp += int((d & (win < 0) & mask).sum())
    return hit, fp, dev.score(sc).normalized


def main() -> None:
    torch.set_num_threads(1)
    corpus = NabCorpus.load(DATA, LABELS)
    ck = load_checkpoint()
    base = ck.scoring
    dev = DevSet(DATA, corpus, ck.model, base)
    h0, fp0, s0 = windows_hit(dev, corpus, base)
    print(f"base {s0:.2f}: {sum(h0.values())} windows, {fp0} FP rows")
    names = sys.argv[1:] or [p.name for p in FREE_PARAMETERS]
    for p in FREE_PARAMETERS:
        if p.name not in names:
            continue
        v = p.get(base)
        for m in (0.75, 1.25):
            nv = round(v * m) if p.integer else v * m
            h, fp, s = windows_hit(dev, corpus, p.set(base, nv))
            lost = [(f.split("/")[-1], w) for f, w in h if h0[(f, w)] and not h[(f, w)]]
            gained = [(f.split("/")[-1], w) for f, w in h if h[(f, w)] and not h0[(f, w)]]
            move = f"{s:.2f} ({s - s0:+.2f}), FP rows {fp} ({fp - fp0:+d})"
            print(f"{p.name} {nv:.4g}: {move}; lost {lost}; gained {gained}")


if __name__ == "__main__":
    main()
