"""Experiment (issue 18, seventeenth session): all dev (standard, the production threshold) under the
``rearm`` lifecycle (``rearm.py``), with scoring fields set (``field=value``, each argument one point).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. [REARM_LOW=0.3] .venv/bin/python \\
        bench/results/devvm-2026-12-08-session17/rearm_dev.py [--shipped] [warmup=300 ...]

``--shipped``: the bundled lifecycle (blocks), for comparison.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session13"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import importlib
import os

from lifecycle_probe import dev_set
from window_table import point

rearm = importlib.import_module(os.environ.get("REARM_MODULE", "rearm"))


def _knobs() -> str:
    return f"low {getattr(rearm, 'LOW', 'close')} quiet {getattr(rearm, 'QUIET', 'close_after')}"


def main() -> None:
    shipped_rule = "--shipped" in sys.argv
    if not shipped_rule:
        rearm.install()
    corpus, shipped, dev = dev_set()
    label = "blocks (shipped)" if shipped_rule else f"{rearm.__name__} {_knobs()}"
    point(corpus, dev, shipped, label)
    for arg in [a for a in sys.argv[1:] if not a.startswith("--")]:
        f = {}
        for kv in arg.split(","):
            k, v = kv.split("=")
            f[k] = type(getattr(shipped, k))(float(v))
        point(corpus, dev, dataclasses.replace(shipped, **f), arg)


if __name__ == "__main__":
    main()
