"""Experiment (issue 18): the protocol of the bundled detector under both selection rules, the best own
score (the rule until the sixteenth session) and the best worst score within +-25 % of each grid
parameter (``run_protocol(robust=True)``), and the sensitivity table once.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session16/protocol_rules.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from lifecycle_probe import dev_set

from models.protocol import run_protocol


def main() -> None:
    _, shipped, dev = dev_set()
    for robust in (False, True):
        print(f"== robust={robust}", flush=True)
        print(run_protocol(dev, shipped, sensitivity=robust, robust=robust).table(), flush=True)


if __name__ == "__main__":
    main()
