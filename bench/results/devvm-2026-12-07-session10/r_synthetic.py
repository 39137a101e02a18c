"""Experiment (issue 18): the synthetic families (models.synthetic, seeds 0-2) under the shipped detector
with R (the alert block) moved, R_other = R/2: recall, precision and false alerts per 10k events.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session10/r_synthetic.py
"""

import dataclasses

import torch

from models.checkpoint import load_checkpoint
from models.synthetic import evaluate_synthetic


def main() -> None:
    torch.set_num_threads(1)
    base = load_checkpoint().scoring
    print(
        "R seed | "
        + " | ".join(f"{f}: recall / precision / false per 10k" for f in ("counts", "shifts", "hourly"))
        + " | counts_quiet false per 10k | quiet alerts"
    )
    for r in (50, 75, 100, 200):
        sc = dataclasses.replace(base, suppress=r, suppress_other=r // 2)
        for seed in (0, 1, 2):
            q = {row.family: row for row in evaluate_synthetic(scoring=sc, seed=seed)}
            cells = [
                f"{q[f].recall:.2f} / {q[f].precision:.2f} / {q[f].false_per_10k:.2f}"
                for f in ("counts", "shifts", "hourly")
            ]
            print(
                f"{r} {seed} | "
                + " | ".join(cells)
                + f" | {q['counts_quiet'].false_per_10k:.2f} | {q['quiet'].alerts}",
                flush=True,
            )


if __name__ == "__main__":
    main()
