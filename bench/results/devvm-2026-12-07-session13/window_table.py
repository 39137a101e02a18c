"""Experiment (issue 18): which dev windows the shipped detector misses and where its FP rows are,
at R 200 (shipped) and R 50 (the flat part of the landscape), by full scorer runs.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session13/window_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import r_landscape
from lifecycle_probe import dev_set


def table(corpus, det, thr):  # type: ignore[no-untyped-def]
    missed, fps = [], {}
    for f in corpus.files:
        m, w = corpus._mask[f], corpus._win[f]
        d = (det[f] >= thr) & m
        for wid in np.unique(w[(w >= 0) & m]):
            if not d[w == wid].any():
                rows = np.flatnonzero(w == wid)
                missed.append((f, int(wid), int(rows[0]), int(rows[-1])))
        n = int((d & (w < 0)).sum())
        if n:
            fps[f] = n
    return missed, fps


def point(corpus, dev, c, label: str) -> None:  # type: ignore[no-untyped-def]
    """One line: all dev (standard, the production threshold) of config ``c``, missed windows, FP rows per file."""
    det = dev.detections(c)
    s = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
    missed, fps = table(corpus, det, c.open_threshold)
    per = {f.split("/")[1][:24]: n for f, n in fps.items()}
    print(f"{label}: {s:.2f}, missed {[m[1] for m in missed]}, {sum(fps.values())} FP rows {per}", flush=True)


def dev_and_synthetic(data, labels, seeds=(0, 1, 2), per_file: bool = True) -> None:  # type: ignore[no-untyped-def]
    """The bundled checkpoint's scoring (with whatever patches are in place now): all dev at the production
    threshold, then the synthetic families of ``seeds`` (recall, alerts, false alerts per 10k)."""
    import models.synthetic as syn
    from models.checkpoint import load_checkpoint
    from models.nab import NabCorpus
    from models.protocol import DevSet

    ck = load_checkpoint()
    corpus = NabCorpus.load(data, labels)
    det = DevSet(data, corpus, ck.model, ck.scoring).detections(ck.scoring)
    s = corpus.score(det, threshold=ck.scoring.open_threshold)["standard"].normalized
    missed, fps = table(corpus, det, ck.scoring.open_threshold)
    print(f"dev: {s:.2f} ({39 - len(missed)} windows, {sum(fps.values())} FP rows), missed {[m[1] for m in missed]}")
    if per_file:
        print("  FP rows per file:", {f.split("/")[1][:24]: n for f, n in fps.items()}, flush=True)
    for seed in seeds:
        cells = []
        for r in syn.evaluate_synthetic(scoring=ck.scoring, seed=seed):
            rec = f"recall {r.recall:.2f}, " if r.windows else ""
            cells.append(f"{r.family} {rec}alerts {r.alerts}, false/10k {r.false_per_10k:.2f}")
        print(f"seed {seed}: " + "; ".join(cells), flush=True)


def main() -> None:
    corpus, shipped, dev = dev_set()
    for rr in [int(a) for a in sys.argv[1:]] or [200, 50]:
        c = r_landscape.with_r(shipped, rr)
        det = dev.detections(c)
        s = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
        missed, fps = table(corpus, det, c.open_threshold)
        print(f"R {rr}: {s:.2f}, {sum(fps.values())} FP rows")
        for f, wid, a, b in missed:
            print(f"  missed window {wid}: {f} rows {a}-{b}")
        for f, n in sorted(fps.items(), key=lambda kv: -kv[1]):
            print(f"  FP {n:3d} {f}")


if __name__ == "__main__":
    main()
