"""Experiment (issue 18, seventeenth session): run a probe with the fifteenth session's half-normal null on
the shift channel installed (``halfnormal_shift.py``; torch scorer). With ``rearm_dev.py`` or
``rearm_sens.py`` (which install ``rearm``) or ``rearm_wrap.py SCRIPT`` it measures the two together:
under ``rearm`` no window depends on a block, so only the windows that rest on the shift channel's
overstated tail should go.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. REARM_LOW=0.3 .venv/bin/python \\
        bench/results/devvm-2026-12-08-session17/rearm_halfnormal_shift.py SCRIPT [ARGS ...]
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session15"))

import halfnormal_shift as hn

from models.calibrated import CalibratedChannels


def main() -> None:
    CalibratedChannels.calibrate = hn.calibrate  # type: ignore[method-assign]
    CalibratedChannels.init_row = hn.init_row  # type: ignore[method-assign]
    CalibratedChannels._k = hn.k  # type: ignore[method-assign]
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(Path(script).parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
