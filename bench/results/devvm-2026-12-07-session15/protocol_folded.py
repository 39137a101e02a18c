"""Experiment (issue 18): ``seqstream evaluate nab --protocol``'s LOCO folds and sensitivity table
(``models.protocol.run_protocol``) with channels calibrated as a folded normal (``folded_shift.py``).
Torch scorer.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session15/protocol_folded.py [--channels 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import folded_shift
from lifecycle_probe import dev_set

from models.protocol import run_protocol


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, nargs="+", default=[1])
    a = ap.parse_args()
    folded_shift.patch(a.channels)
    _, shipped, dev = dev_set()
    print(f"folded normal on channels {a.channels}", flush=True)
    print(run_protocol(dev, shipped).table(), flush=True)


if __name__ == "__main__":
    main()
