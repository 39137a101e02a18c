"""Experiment (issue 18): the tenth session's ``lifecycle_probe.py`` (alert rules with and without
chained blocks, the sensitivity of each) or ``r_landscape.py`` (the shipped rule over R, the
sensitivity table at several base R) with the residual channel in step units
(``noise_scale.py --channels 0``: the step factor after the time-of-day baseline, the normaliser's
rate), from the configuration before the step scale.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/with_noise_scale.py lifecycle_probe
    ... with_noise_scale.py r_landscape --bases 50 100
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import noise_scale
from report import before_step_scale

if __name__ == "__main__":
    probe = sys.argv.pop(1)
    assert probe in ("lifecycle_probe", "r_landscape"), probe
    before_step_scale()  # the configuration of the recorded runs
    noise_scale.patch(1.0, (0,))
    importlib.import_module(probe).main()
