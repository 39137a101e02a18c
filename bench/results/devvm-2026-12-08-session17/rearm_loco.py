"""Experiment (issue 18, seventeenth session): leave-one-category-out under the ``rearm`` lifecycle
(``rearm.py``), the product's selection rule over shift_short in {9, 12, 15} (R, the other grid
parameter, does not exist there).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. REARM_LOW=0.3 .venv/bin/python \\
        bench/results/devvm-2026-12-08-session17/rearm_loco.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import importlib
import os

from lifecycle_probe import dev_set

from models.protocol import run_protocol

rearm = importlib.import_module(os.environ.get("REARM_MODULE", "rearm"))


def _knobs() -> str:
    return f"low {getattr(rearm, 'LOW', 'close')} quiet {getattr(rearm, 'QUIET', 'close_after')}"


def main() -> None:
    rearm.install()
    _, base, dev = dev_set()
    print(
        f"{rearm.__name__} {_knobs()}",
        flush=True,
    )
    print(run_protocol(dev, base, grid={"shift_short": [9, 12, 15]}, sensitivity=False).table(), flush=True)


if __name__ == "__main__":
    main()
