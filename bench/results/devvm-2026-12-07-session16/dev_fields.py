"""Experiment (issue 18): all dev (standard, the production threshold) of the bundled detector with scoring
fields set (``field=value``, each argument one point; ``a=1,b=2`` sets two together): score, missed window
ids, FP rows per file (the compiled loops).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session16/dev_fields.py \\
        count_defined=1 ...
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session13"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from lifecycle_probe import dev_set
from window_table import point


def main() -> None:
    corpus, shipped, dev = dev_set()
    point(corpus, dev, shipped, "as bundled")
    for arg in sys.argv[1:]:
        f = {}
        for kv in arg.split(","):
            k, v = kv.split("=")
            f[k] = type(getattr(shipped, k))(float(v))
        point(corpus, dev, dataclasses.replace(shipped, **f), arg)


if __name__ == "__main__":
    main()
