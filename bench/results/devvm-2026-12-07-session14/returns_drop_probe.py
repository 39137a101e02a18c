"""Experiment (issue 18): which channel opens the alerts just before the two level-shift returns the drop channel
costs (synthetic `shifts`, seed 0, `shifts_1` and `shifts_3`; torch scorer, the bundled detector).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session14/returns_drop_probe.py
"""

import numpy as np
import torch

from models.calibrated import CalibratedChannels
from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.synthetic import make_families
from models.types import Batch

torch.set_num_threads(1)
LAST = {}
_cal = CalibratedChannels.calibrate


def calibrate(self, aux, r, ok, count, bucket, is_open):
    _cal(self, aux, r, ok, count, bucket, is_open)
    LAST["score"] = aux[:, self._score].clone()


CalibratedChannels.calibrate = calibrate
ck = load_checkpoint()
fam = make_families(0, 6)["shifts"]
for name, ret in (("shifts_1", 2076), ("shifts_3", 2055)):
    s = next(x for x in fam if x.name == name)
    r = Runner(ck.model, ck.scoring, device="cpu", capacity=2)
    r.scorer._cal_kernel = None
    for t in range(ret + 50):
        res = r.process(Batch([s.name], s.ts[t : t + 1], np.array([[s.values[t]]], np.float32)))
        if res.transition[0] > 0 and t > ret - 300:
            print(
                name,
                "opened at",
                t,
                "(return at",
                ret,
                ") channel scores resid/profile/drop/shift",
                LAST["score"].numpy().round(2),
            )
