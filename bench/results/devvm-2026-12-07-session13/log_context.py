"""Experiment (issue 18): the profile and shift channels (and the profile gate) in the log domain, the
residual channel (the GRU's forecast) in linear units as shipped. The context channels see
``sign(x) log1p(|x|)`` of the targets and no normaliser sd (their calibration scales them). Motivation:
``log_domain_synthetic.txt``: the whole detector in the log domain halves the false alerts on bursty
counts but loses five dev windows; most ``counts_quiet`` alerts open on the profile channel.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session13/log_context.py [--no-dev]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from models.scoring import Scorer

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
_context = Scorer._context


def context(self, aux, x, std, count, err, phase, step=None):  # type: ignore[no-untyped-def]
    t = self.n_targets
    xl = x.clone()
    xl[:, :t] = torch.sign(x[:, :t]) * torch.log1p(x[:, :t].abs())  # [B, T]
    return _context(self, aux, xl, torch.ones_like(std), count, err, phase, step)


def main() -> None:
    Scorer._context = context  # type: ignore[method-assign]
    from lifecycle_probe import dev_set
    from window_table import table

    from models.checkpoint import load_checkpoint
    from models.synthetic import evaluate_synthetic

    if "--no-dev" not in sys.argv:
        corpus, shipped, dev = dev_set()
        det = dev.detections(shipped)
        s = corpus.score(det, threshold=shipped.open_threshold)["standard"].normalized
        missed, fps = table(corpus, det, shipped.open_threshold)
        print(
            f"dev: {s:.2f} ({39 - len(missed)} windows, {sum(fps.values())} FP rows), missed {[m[1] for m in missed]}"
        )
        print("  FP rows per file:", {f.split("/")[1][:24]: n for f, n in fps.items()}, flush=True)
    sc = load_checkpoint().scoring
    for seed in (0, 1, 2):
        cells = []
        for r in evaluate_synthetic(scoring=sc, seed=seed):
            rec = f"recall {r.recall:.2f}, " if r.windows else ""
            cells.append(f"{r.family} {rec}alerts {r.alerts}, false/10k {r.false_per_10k:.2f}")
        print(f"seed {seed}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
