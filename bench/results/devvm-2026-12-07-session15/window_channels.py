"""Experiment (issue 18): per dev window, each channel's highest score inside it (channels: residual,
profile, drop, shift), for the bundled detector, and with ``--halfnormal`` the shift channel scored
with a half-normal null (``halfnormal_shift.py``). Torch scorer.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session15/window_channels.py [--halfnormal]

Its output here was measured on the bundle of 42fce55 (before the profile channel's own null: ``profile_folded`` in
f573097, ``profile_halfnormal`` since).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from lifecycle_probe import dev_set, traces

from models.calibrated import CalibratedChannels


def main() -> None:
    if "--halfnormal" in sys.argv:
        import halfnormal_shift as hn

        CalibratedChannels.calibrate = hn.calibrate  # type: ignore[method-assign]
        CalibratedChannels.init_row = hn.init_row  # type: ignore[method-assign]
        CalibratedChannels._k = hn.k  # type: ignore[method-assign]
    corpus, shipped, dev = dev_set()
    chans, _ = traces(dev, shipped)
    for f, sc in zip(dev.files, chans):
        w, m = corpus._win[f], corpus._mask[f]
        for wid in np.unique(w[(w >= 0) & m]):
            inside = (w == wid) & m
            mx = sc[inside].max(0)
            print(f"window {wid:2d} {f.split('/')[1][:28]:28s} max per channel {np.round(mx, 3)}", flush=True)


if __name__ == "__main__":
    main()
