"""Run another probe script with the ``rearm`` lifecycle installed (``rearm.py``; torch scorer).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. [REARM_LOW=0.3] .venv/bin/python \\
        bench/results/devvm-2026-12-08-session17/rearm_wrap.py SCRIPT [ARGS ...]
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import importlib
import os

rearm = importlib.import_module(os.environ.get("REARM_MODULE", "rearm"))


def main() -> None:
    rearm.install()
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(Path(script).parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
