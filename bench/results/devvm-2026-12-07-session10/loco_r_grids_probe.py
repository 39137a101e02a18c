"""Experiment (issue 18): leave-one-category-out over R alone (shift_short as shipped), for several R
grids: which R each fold's rule picks on the other two categories and what the held-out one scores.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session10/loco_r_grids_probe.py
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from lifecycle_probe import dev_set, rule_blocks, traces

RS = (25, 50, 75, 100, 125, 150, 175, 200, 225, 250, 300)
GRIDS = (RS, (150, 200, 250), (100, 150, 200), (175, 200, 225), (50, 100, 150), (200, 250, 300))


def main() -> None:
    corpus, shipped, dev = dev_set()
    chans, steps = traces(dev, shipped)
    dets: dict[int, dict[str, np.ndarray]] = {}
    for r in RS:
        c = dataclasses.replace(shipped, suppress=r, suppress_other=r // 2)
        dets[r] = {f: rule_blocks(c, chans[i], steps[i]) for i, f in enumerate(dev.files)}

    def score(r: int, fs: list[str]) -> float:
        return corpus.subset(fs).score({f: dets[r][f] for f in fs}, threshold=0.5)["standard"].normalized

    cats = sorted({f.split("/")[0] for f in dev.files})
    for grid in GRIDS:
        folds = []
        for held in cats:
            train = [f for f in dev.files if not f.startswith(held)]
            test = [f for f in dev.files if f.startswith(held)]
            best = max(grid, key=lambda r, train=train: score(r, train))
            folds.append((held, best, score(best, test)))
        mean = sum(s for _, _, s in folds) / len(folds)
        print(f"grid {grid}: " + ", ".join(f"{h} R {b}: {s:.2f}" for h, b, s in folds) + f"; LOCO mean {mean:.2f}")


if __name__ == "__main__":
    main()
