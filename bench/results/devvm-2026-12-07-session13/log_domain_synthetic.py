"""Experiment (issue 18): the synthetic families in the log domain: every series with no negative value
becomes ``log1p(value)`` (``--sqrt``: ``sqrt(value)``), then ``evaluate_synthetic`` with the bundled detector,
seeds 0-2 (recall, alerts, false alerts per 10k events per family). See ``log_domain.py`` for dev.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session13/log_domain_synthetic.py [--sqrt]
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import torch

import models.synthetic as syn
from models.checkpoint import load_checkpoint

_make = syn.make_families


F = np.sqrt if "--sqrt" in sys.argv else np.log1p


def make_families(seed: int, per_family: int = 6) -> dict[str, list[syn.SynthSeries]]:
    out = _make(seed, per_family)
    return {
        f: [dataclasses.replace(s, values=F(s.values) if s.values.min() >= 0 else s.values) for s in ss]
        for f, ss in out.items()
    }


def main() -> None:
    syn.make_families = make_families  # type: ignore[assignment]
    torch.set_num_threads(1)
    sc = load_checkpoint().scoring
    for seed in (0, 1, 2):
        cells = []
        for r in syn.evaluate_synthetic(scoring=sc, seed=seed):
            rec = f"recall {r.recall:.2f}, " if r.windows else ""
            cells.append(f"{r.family} {rec}alerts {r.alerts}, false/10k {r.false_per_10k:.2f}")
        print(f"seed {seed}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
