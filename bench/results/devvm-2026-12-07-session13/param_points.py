"""Experiment (issue 18): all dev (standard, the production threshold) of the bundled detector with single
fields changed, by full scorer runs (the compiled loops): score, missed window ids, FP rows per file.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session13/param_points.py \\
        shift_short=15 shift_short=18 shift_short=19 hold_release=2 hold_release=5 ...
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from lifecycle_probe import dev_set
from window_table import point


def main() -> None:
    corpus, shipped, dev = dev_set()
    for kv in sys.argv[1:]:
        k, v = kv.split("=")
        point(corpus, dev, dataclasses.replace(shipped, **{k: type(getattr(shipped, k))(float(v))}), kv)


if __name__ == "__main__":
    main()
