"""Experiment (issue 18): which channel opens each alert on the anomaly-free `quiet` series of the given
seeds (the product's Runner, one stream at a time; each channel's score at the opening, 0 residual, 1
profile, 2 drop, 3 shift), for the checkpoints given.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session16/quiet_channels.py \\
        CKPT [CKPT ...] --seeds 34 39 --series noisy_1
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.synthetic import make_families
from models.types import Batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--series", nargs="*", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    for path in a.checkpoints:
        ck = load_checkpoint(path)
        print(f"== {path}", flush=True)
        for seed in a.seeds:
            for s in make_families(seed, 6)["quiet"]:
                if a.series and s.name not in a.series:
                    continue
                r = Runner(ck.model, ck.scoring, device="cpu", capacity=2)
                cal = r.scorer.calibrated
                assert cal is not None
                for t in range(len(s.values)):
                    res = r.process(Batch([s.name], s.ts[t : t + 1], np.array([[s.values[t]]], np.float32)))
                    if res.transition[0] > 0:
                        ch = r.slab.aux[0, cal._score].tolist()
                        print(
                            f"seed {seed} {s.name} row {t} score {res.score[0]:.3f} channels "
                            f"{[round(c, 3) for c in ch]}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
