"""Experiment (issue 18): with the residual in step units (``noise_scale.py --channels 0``), what the
shipped rule finds and misses on NAB dev at R 50 (the flat part of the R landscape) against R 200
(its peak): windows (NabCorpus ids), FP rows per file, and the standard score per category.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/flat_region.py [--shipped] [R ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import noise_scale
import r_landscape
from lifecycle_probe import dev_set, rule_blocks, traces


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--shipped"]:  # the bundled detector as it is (step_scale in the product)
        args = args[1:]
    else:
        from report import before_step_scale

        before_step_scale()
        noise_scale.patch(1.0, (0,))
    corpus, shipped, dev = dev_set()
    chans, steps = traces(dev, shipped)
    for r in [int(a) for a in args] or [50, 200]:
        c = r_landscape.with_r(shipped, r)
        det = {f: rule_blocks(c, chans[i], steps[i]) for i, f in enumerate(dev.files)}
        tot = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
        cats = {}
        for cat in sorted(set(dev.category.values())):
            fs = [f for f in dev.files if dev.category[f] == cat]
            cats[cat] = (
                corpus.subset(fs).score({f: det[f] for f in fs}, threshold=c.open_threshold)["standard"].normalized
            )
        print(f"R {r}: all dev {tot:.2f}; " + ", ".join(f"{k} {v:.2f}" for k, v in cats.items()))
        missed, fps = [], []
        for f in dev.files:
            win, mask, d = corpus._win[f], corpus._mask[f], det[f] > 0
            for w in np.unique(win[win >= 0]):
                if not (d & (win == w) & mask).any() and (mask & (win == w)).any():
                    missed.append(f"{f.split('/')[1][:-4]}#{w}")
            n_fp = int((d & (win < 0) & mask).sum())
            if n_fp:
                fps.append(f"{f.split('/')[1][:-4]} {n_fp}")
        print(f"  missed ({len(missed)}): {', '.join(missed)}")
        print(f"  FP rows ({sum(int(s.split()[-1]) for s in fps)}): {', '.join(fps)}")


if __name__ == "__main__":
    main()
