"""Experiment (issue 18): every alert opening (row, detection score, window or FP) in the named dev
files, bundled and with ``--halfnormal`` (the shift channel under a half-normal null). Torch scorer.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session15/alert_rows.py [--halfnormal] [--checkpoint PATH] speed_7578 \\
            occupancy_6005

``alert_rows.txt``: ``--checkpoint`` the bundle of 42fce55
(``git show 42fce55:models/checkpoints/sensor_gru.pt > /tmp/bundle_42fce55.pt``), without and with
``--halfnormal``.

Its output here was measured on the bundle of 42fce55 (before the profile channel's own null: ``profile_folded`` in
f573097, ``profile_halfnormal`` since).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from lifecycle_probe import dev_set

from models.calibrated import CalibratedChannels


def main() -> None:
    args = sys.argv[1:]
    if "--checkpoint" in args:
        import models.checkpoint as mc

        i = args.index("--checkpoint")
        mc.DEFAULT_CHECKPOINT = Path(args[i + 1])
        del args[i : i + 2]
    names = [a for a in args if not a.startswith("--")]
    if "--halfnormal" in sys.argv:
        import halfnormal_shift as hn

        CalibratedChannels.calibrate = hn.calibrate  # type: ignore[method-assign]
        CalibratedChannels.init_row = hn.init_row  # type: ignore[method-assign]
        CalibratedChannels._k = hn.k  # type: ignore[method-assign]
    corpus, shipped, dev = dev_set()
    det = dev.detections(shipped)
    for f in dev.files:
        if not any(n in f for n in names):
            continue
        w = corpus._win[f]
        rows = np.flatnonzero(det[f] >= shipped.open_threshold)
        cells = [f"{r}:{det[f][r]:.2f}:{'w' + str(w[r]) if w[r] >= 0 else 'FP'}" for r in rows]
        spans = {
            int(i): (int(np.flatnonzero(w == i)[0]), int(np.flatnonzero(w == i)[-1])) for i in np.unique(w[w >= 0])
        }
        print(f"{f}: windows {spans}\n  alerts {' '.join(cells)}", flush=True)


if __name__ == "__main__":
    main()
