"""Experiment (issue 18): every alert opening in the named dev files (row, detection score, window or FP, and
the channel with the highest score there: 0 residual, 1 profile, 2 drop, 3 shift), as bundled and with
scoring fields set (``field=value``). Torch scorer for the channel scores, the compiled loops for the alerts.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session16/opening_channels.py \\
        count_defined=1 -- cpu_utilization_asg_misc machine_temperature
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from lifecycle_probe import dev_set, traces


def main() -> None:
    i = sys.argv.index("--")
    fields, names = sys.argv[1:i], sys.argv[i + 1 :]
    corpus, shipped, dev = dev_set()
    f = {k: type(getattr(shipped, k))(float(v)) for k, v in (kv.split("=") for kv in fields)}
    for label, c in (("as bundled", shipped), (" ".join(fields), dataclasses.replace(shipped, **f))):
        det = dev.detections(c)
        chans, _ = traces(dev, c)
        print(f"== {label}", flush=True)
        for j, fn in enumerate(dev.files):
            if not any(n in fn for n in names):
                continue
            w = corpus._win[fn]
            rows = np.flatnonzero(det[fn] >= c.open_threshold)
            cells = [
                f"{r}:{det[fn][r]:.2f}:{'w' + str(w[r]) if w[r] >= 0 else 'FP'}:ch{int(np.argmax(chans[j][r]))}"
                for r in rows
            ]
            print(f"{fn}: {' '.join(cells)}", flush=True)


if __name__ == "__main__":
    main()
