"""Experiment (issue 18): how often the profile channel is defined (profile gate on, bucket seen) on
`quiet`'s white-noise series (seeds 3 and 26), after their first week. Torch scorer, the bundle.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session15/profile_gate_noise.py
"""

import numpy as np
import torch

from models.calibrated import CalibratedChannels
from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.synthetic import make_families
from models.types import Batch

torch.set_num_threads(1)
OK = []
_cal = CalibratedChannels.calibrate


def calibrate(self, aux, r, ok, count, bucket, is_open):
    OK.append(bool(ok[0, 1]))
    _cal(self, aux, r, ok, count, bucket, is_open)


CalibratedChannels.calibrate = calibrate
ck = load_checkpoint()
for seed in (3, 26):
    for s in [x for x in make_families(seed, 6)["quiet"] if x.name.startswith("noisy")]:
        OK.clear()
        r = Runner(ck.model, ck.scoring, device="cpu", capacity=2)
        r.scorer._cal_kernel = None
        for t in range(len(s.values)):
            r.process(Batch([s.name], s.ts[t : t + 1], np.array([[s.values[t]]], np.float32)))
        n = sum(OK[2016:])
        print(f"seed {seed} {s.name}: profile channel defined at {n} of {len(OK) - 2016} events after the first week")
