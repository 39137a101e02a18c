"""Experiment (issue 18): ``r_landscape.py`` (the shipped rule over R, the sensitivity table at several
base R) with the residual channel in the noise scale (``noise_scale.py --channels 0``).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/r_landscape_with_noise_scale.py --bases 50 100
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import noise_scale
import r_landscape

if __name__ == "__main__":
    noise_scale.patch(1.0, (0,))
    r_landscape.main()
