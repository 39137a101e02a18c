"""Experiment (issue 18): all dev (standard, the production threshold) of the bundled detector with one
free parameter (``models.protocol.FREE_PARAMETERS``, which moves every field it ties) set to a value:
score, missed window ids, FP rows per file (the compiled loops).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session14/free_points.py \\
        rho=0.15 R=150 ...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session13"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from lifecycle_probe import dev_set
from window_table import point

from models.protocol import FREE_PARAMETERS


def main() -> None:
    corpus, shipped, dev = dev_set()
    params = {p.name: p for p in FREE_PARAMETERS}
    for kv in sys.argv[1:]:
        k, v = kv.split("=")
        point(corpus, dev, params[k].set(shipped, float(v)), kv)


if __name__ == "__main__":
    main()
