"""Experiment (issue 18): the all-dev score of the shipped alert rule over R, and the sensitivity table
at several R.

The per-channel scores do not depend on the alert lifecycle's parameters (R, R_other, the threshold,
close_threshold, close_after, warm-up), so each of the other parameters' moves is scored once
(``lifecycle_probe.traces``) and the shipped rule (``lifecycle_probe.rule_blocks``, checked there
to reproduce ``DevSet.detections``) is replayed for every R. Prints the R landscape (R_other = R/2),
then for each base R in ``--bases`` the all-dev standard score at -25 % / +25 % of every free
parameter (``models.protocol.FREE_PARAMETERS``).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session10/r_landscape.py --bases 50 75 100 200
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from lifecycle_probe import dev_set, rule_blocks, traces

from models.nab import NabCorpus
from models.protocol import FREE_PARAMETERS, DevSet
from models.scoring_config import ScoringConfig

_RULE_ONLY = {"R", "R_other/R", "alpha", "close", "close_after", "warmup"}


def with_r(c: ScoringConfig, r: int, ratio: float = 0.5) -> ScoringConfig:
    return dataclasses.replace(c, suppress=int(r), suppress_other=round(r * ratio))


def score(
    corpus: NabCorpus, files: list[str], tr: tuple[list[np.ndarray], list[np.ndarray]], c: ScoringConfig
) -> tuple[float, int]:
    chans, steps = tr
    det = {f: rule_blocks(c, chans[i], steps[i]) for i, f in enumerate(files)}
    res = corpus.score(det, threshold=c.open_threshold)["standard"]
    return res.normalized, sum(int((d > 0).sum()) for d in det.values())


Traces = tuple[list[np.ndarray], list[np.ndarray]]


def moved_traces(dev: DevSet, shipped: ScoringConfig) -> dict[tuple[str, float], tuple[ScoringConfig, Traces | None]]:
    """Each free parameter at -25 % / +25 %: its config and, where it changes the channel scores, their traces."""
    moved: dict[tuple[str, float], tuple[ScoringConfig, Traces | None]] = {}
    for p in FREE_PARAMETERS:
        v = p.get(shipped)
        for m in (0.75, 1.25):
            c = p.set(shipped, round(v * m) if p.integer else v * m)
            moved[(p.name, m)] = (c, None if p.name in _RULE_ONLY else traces(dev, c))
    return moved


def table(
    corpus: NabCorpus,
    files: list[str],
    base_tr: tuple[list[np.ndarray], list[np.ndarray]],
    moved: dict[tuple[str, float], tuple[ScoringConfig, tuple[list[np.ndarray], list[np.ndarray]] | None]],
    shipped: ScoringConfig,
    r: int,
) -> None:
    """Print the sensitivity table of the shipped rule at base R ``r`` (each parameter at -25 % / +25 %)."""
    b = with_r(shipped, r)
    s0, n0 = score(corpus, files, base_tr, b)
    print(f"base R {r} (R_other {b.suppress_other}): {s0:.2f} ({n0} alerts)")
    worst = 0.0
    for p in FREE_PARAMETERS:
        cells = []
        for m in (0.75, 1.25):
            c, tr = moved[(p.name, m)]
            if p.name == "R":
                c = with_r(b, round(r * m))
            elif p.name == "R_other/R":
                c = dataclasses.replace(c, suppress=r, suppress_other=round(r * p.get(c)))
            else:
                c = dataclasses.replace(c, suppress=r, suppress_other=b.suppress_other)
            s, _ = score(corpus, files, tr if tr is not None else base_tr, c)
            worst = max(worst, abs(s - s0))
            cells.append(f"{s:.2f} ({s - s0:+.2f})")
        print(f"  {p.name}: {' / '.join(cells)}", flush=True)
    print(f"  largest move: {worst:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bases", type=int, nargs="+", default=[50, 75, 100, 200])
    args = ap.parse_args()
    corpus, shipped, dev = dev_set()
    base_tr = traces(dev, shipped)
    print("R landscape (R_other = R/2): all-dev standard, alerts")
    for r in (25, 38, 50, 63, 75, 100, 125, 150, 175, 200, 225, 250, 300):
        s, n = score(corpus, dev.files, base_tr, with_r(shipped, r))
        print(f"  R {r}: {s:.2f} ({n})", flush=True)
    moved = moved_traces(dev, shipped)
    for r in args.bases:
        table(corpus, dev.files, base_tr, moved, shipped, r)


if __name__ == "__main__":
    main()
