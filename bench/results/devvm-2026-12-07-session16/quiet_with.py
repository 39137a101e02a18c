"""The fifteenth session's ``quiet_rate.py`` with another checkpoint (a bundle made with
``bench/rescore_checkpoint.py`` from a patched tree, or an older bundle).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session16/quiet_with.py \\
        CHECKPOINT --seeds 0 50
"""

import runpy
import sys
from pathlib import Path

import models.checkpoint as mc

mc.DEFAULT_CHECKPOINT = Path(sys.argv.pop(1))
sys.argv[0] = str(Path(__file__).parents[1] / "devvm-2026-12-07-session15" / "quiet_rate.py")
runpy.run_path(sys.argv[0], run_name="__main__")
