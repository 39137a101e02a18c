"""Experiment (issue 18): two designed behaviours of the bundled detector (``tests/test_calibrated.py``) at
shift_short 15 (bundled) and 12 (the robust rule's choice with ``count_defined``): the alerts opened on
synthetic ``shifts`` seed 0 series 5 (its level shift's onset window starts at 1496, the return's at 2119)
and the late alerts (row >= 1000) on a flat series with a pair of spikes every 100 events.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session16/shift_short12_behaviour.py
"""

from dataclasses import replace

import numpy as np

import tests.test_calibrated as t
from models.checkpoint import load_checkpoint
from models.synthetic import SynthSeries, make_families

shipped = load_checkpoint().scoring
full = make_families(seed=0)["shifts"][5]
series = replace(full, ts=full.ts[:2300], values=full.values[:2300])
n = 3000
vals = np.zeros(n)
vals[0::100] = vals[6::100] = 20.0
spikes = SynthSeries("spikes", "quiet", 1.7e9 + np.arange(n) * 300.0, vals, [])
for kw in ({}, {"shift_short": 12}):
    c = replace(shipped, **kw)
    late = [o for o in t._opened(c, spikes) if o >= 1000]
    print(kw or "bundled", "level shift:", t._opened(c, series), "spikes, late:", late)
