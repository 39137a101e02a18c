"""Experiment (issue 18): alert rules over the shipped detector's channel scores (with the step scale),
looking for one that drops repeat alerts without chaining blocks: the shipped blocks at several R,
``rearm`` (a channel re-arms after ``quiet`` events below ``low``) and ``rearm`` combined with the
shipped blocks at R 50. All dev standard at the production threshold, windows and FP rows.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/rule_scan.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import r_landscape
from lifecycle_probe import dev_set, rule_blocks, rule_rearm, traces, windows_and_fp


def main() -> None:
    corpus, shipped, dev = dev_set()
    chans, steps = traces(dev, shipped)

    def show(name: str, det: dict[str, np.ndarray]) -> None:
        r = corpus.score(det, threshold=shipped.open_threshold)["standard"].normalized
        w, fp = windows_and_fp(corpus, det, shipped.open_threshold)
        print(f"{name}: {r:.2f} ({w} windows, {fp} FP rows)", flush=True)

    for rr in (50, 200):
        c = r_landscape.with_r(shipped, rr)
        show(f"blocks R {rr}", {f: rule_blocks(c, chans[i], steps[i]) for i, f in enumerate(dev.files)})
    for low in (0.1, 0.3):
        for quiet in (10, 25, 50, 100):
            show(
                f"rearm low {low} quiet {quiet}",
                {f: rule_rearm(shipped, chans[i], steps[i], low, quiet) for i, f in enumerate(dev.files)},
            )
            c = r_landscape.with_r(shipped, 50)
            show(
                f"blocks R 50 + rearm low {low} quiet {quiet}",
                {f: rule_blocks(c, chans[i], steps[i], (low, quiet)) for i, f in enumerate(dev.files)},
            )


if __name__ == "__main__":
    main()
