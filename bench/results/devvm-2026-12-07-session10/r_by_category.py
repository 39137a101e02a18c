"""Experiment (issue 18): the standard NAB score of each dev category and of all dev under the shipped
alert rule as R (the alert block, R_other = R/2) moves; the channel scores are computed once
(``lifecycle_probe.traces``) and the rule replayed per R.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session10/r_by_category.py
"""

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from lifecycle_probe import dev_set, rule_blocks, traces


def main() -> None:
    corpus, shipped, dev = dev_set()
    chans, steps = traces(dev, shipped)
    cats = sorted({f.split("/")[0] for f in dev.files})
    print("| R | " + " | ".join(cats) + " | all dev |")
    print("|---:|" + "---:|" * (len(cats) + 1))
    for r in (25, 50, 75, 100, 125, 150, 175, 200, 225, 250, 300):
        c = dataclasses.replace(shipped, suppress=r, suppress_other=r // 2)
        det = {f: rule_blocks(c, chans[i], steps[i]) for i, f in enumerate(dev.files)}
        row = []
        for cat in cats:
            fs = [f for f in dev.files if f.startswith(cat)]
            row.append(corpus.subset(fs).score({f: det[f] for f in fs}, threshold=0.5)["standard"].normalized)
        row.append(corpus.score(det, threshold=0.5)["standard"].normalized)
        print(f"| {r} | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
