"""The tenth session's ``lifecycle_probe.py`` (rules replayed in numpy over the per-channel scores) on the
bundled detector of this session, three rules: blocks (shipped), edge_self_quarter, rearm.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-08-session17/lifecycle_now.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import lifecycle_probe as lp


def main() -> None:
    lp.RULES = {k: lp.RULES[k] for k in ("blocks", "edge_self_quarter", "rearm")}
    lp.main()


if __name__ == "__main__":
    main()
