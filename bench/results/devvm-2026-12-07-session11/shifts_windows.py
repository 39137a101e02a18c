"""Experiment (issue 18): which ``shifts`` windows (seeds 0-2) the shipped detector misses, and what
each channel's score does inside them.

Per window: kind (spike: short; return: the level before it is further from the series' starting
level than the level after it; onset: otherwise), the shift's size in the
series' noise sd (estimated from the rows before), detected or not (an alert opening inside), and
the highest score of each channel inside the window.

    [CK=CHECKPOINT] SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/shifts_windows.py
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

from models.calibrated import CalibratedChannels
from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.synthetic import make_families
from models.types import Batch

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0"
LAST: dict[str, torch.Tensor] = {}
_cal = CalibratedChannels.calibrate


def calibrate(self, aux, r, ok, count, bucket, *rest):  # type: ignore[no-untyped-def]
    _cal(self, aux, r, ok, count, bucket, *rest)
    LAST["score"] = aux[:, self._score].clone()


def main() -> None:
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]
    torch.set_num_threads(1)
    fam = sys.argv[1] if len(sys.argv) > 1 else "shifts"
    ck = load_checkpoint(os.environ.get("CK"))  # CK: another checkpoint (default: the bundled one)
    tot = {}
    for seed in (0, 1, 2):
        series = make_families(seed, 6)[fam]
        runner = Runner(ck.model, ck.scoring, device="cpu", capacity=64)
        ids = [s.name for s in series]
        n = len(series[0].values)
        sc = np.zeros((n, len(series), runner.scorer.n_channels), np.float32)  # 4 with the drop channel
        opened = np.zeros((n, len(series)), bool)
        with torch.inference_mode():
            for t in range(n):
                x = np.array([[s.values[t]] for s in series], np.float32)
                res = runner.process(Batch(ids, np.array([s.ts[t] for s in series]), x))
                sc[t] = LAST["score"].numpy()
                opened[t] = res.transition > 0
        for j, s in enumerate(series):
            alerts = np.flatnonzero(opened[:, j]).tolist()
            for a, b in s.windows:
                ln = b - a + 1
                pre = s.values[max(0, a - 300) : a]
                after = s.values[a + 5 : a + 40]
                base = np.median(s.values[:1000])  # the level the series starts at
                if ln < 20:
                    kind, step = "spike", float(s.values[a] - np.median(pre))
                else:  # a return ends at the starting level, an onset leaves it
                    far_before = abs(np.median(pre) - base) > abs(np.median(after) - base)
                    kind, step = ("return" if far_before else "onset"), float(np.median(after) - np.median(pre))
                z = step / (float(np.std(np.diff(pre))) / np.sqrt(2) + 1e-9)
                hit = any(a <= o <= b for o in alerts)
                near = [o - a for o in alerts if a - 250 <= o < a]
                mx = sc[a : b + 1, j].max(0)
                tot.setdefault(kind, [0, 0])
                tot[kind][0] += hit
                tot[kind][1] += 1
                print(
                    f"seed {seed} {s.name} {kind:6s} rows {a}-{b} size {z:+6.1f} sd  {'HIT ' if hit else 'miss'}  "
                    f"max resid/profile/shift {mx[0]:.2f}/{mx[1]:.2f}/{mx[-1]:.2f}  "
                    + (f"drop {mx[2]:.2f}  " if len(mx) == 4 else "")
                    + f"alerts in the 250 rows before: {near}"
                )
    print({k: f"{v[0]}/{v[1]}" for k, v in tot.items()})


if __name__ == "__main__":
    main()
