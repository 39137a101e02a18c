"""Experiment (issue 18): ``lifecycle_probe.py`` (alert rules with and without chained blocks, the
sensitivity of each) with the residual channel in the noise scale (``noise_scale.py --channels 0``).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/lifecycle_with_noise_scale.py [NAME ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import lifecycle_probe
import noise_scale

if __name__ == "__main__":
    noise_scale.patch(1.0, (0,))
    lifecycle_probe.main()
