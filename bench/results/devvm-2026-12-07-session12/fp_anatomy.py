"""Experiment (issue 18): what are the alerts that R 50 adds over R 200 (the shipped detector)?

Records the channel scores once (cached in /tmp), replays the shipped blocks at R 50 and R 200 and
lists every opening of R 50 that R 200 does not make: file, event, channel, score, events since the
previous opening, whether that one was inside a NAB window, and whether this one is.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session12/fp_anatomy.py
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import r_landscape
from lifecycle_probe import dev_set, rule_blocks, traces

CACHE = Path("/tmp/seqstream_traces_prehold.pkl")


def cached():
    """The dev corpus, the detector as it was before ``hold_shift`` (this folder's probes replay alert rules
    over its channel scores, which the held shift channel would make depend on the rule) and its traces."""
    corpus, shipped, dev = dev_set()
    shipped = dataclasses.replace(shipped, hold_shift=False)
    if CACHE.exists():
        chans, steps = pickle.loads(CACHE.read_bytes())
    else:
        chans, steps = traces(dev, shipped)
        CACHE.write_bytes(pickle.dumps((chans, steps)))
    return corpus, shipped, dev, chans, steps


def main() -> None:
    corpus, shipped, dev, chans, steps = cached()
    names = ("resid", "profile", "shift")
    dets = {}
    for rr in (50, 200):
        c = r_landscape.with_r(shipped, rr)
        dets[rr] = {f: rule_blocks(c, chans[i], steps[i]) for i, f in enumerate(dev.files)}
    print("file t channel score since_prev prev_in_window in_window")
    for i, f in enumerate(dev.files):
        win, mask = corpus._win[f], corpus._mask[f]
        a, b = dets[50][f] > 0, dets[200][f] > 0
        opens = np.flatnonzero(a)
        for t in np.flatnonzero(a & ~b):
            prev = opens[opens < t]
            p = int(prev[-1]) if len(prev) else -1
            ch = names[int(chans[i][t].argmax())]
            print(
                f"{Path(f).name[:28]} {t} {ch} {chans[i][t].max():.2f} {t - p if p >= 0 else '-'}"
                f" {bool(win[p] >= 0) if p >= 0 else '-'} {bool(win[t] >= 0 and mask[t])}"
            )
        for t in np.flatnonzero(b & ~a):
            print(f"{Path(f).name[:28]} {t} only-in-R200")


if __name__ == "__main__":
    main()
