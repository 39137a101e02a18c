"""Experiment (issue 18): ``seqstream evaluate nab --protocol``'s LOCO folds and sensitivity table
(``models.protocol.run_protocol``) with the shift channel under a half-normal null
(``halfnormal_shift.py``). Torch scorer.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session15/protocol_halfnormal.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import halfnormal_shift as hn
from lifecycle_probe import dev_set

from models.calibrated import CalibratedChannels
from models.protocol import run_protocol


def main() -> None:
    CalibratedChannels.calibrate = hn.calibrate  # type: ignore[method-assign]
    CalibratedChannels.init_row = hn.init_row  # type: ignore[method-assign]
    CalibratedChannels._k = hn.k  # type: ignore[method-assign]
    _, shipped, dev = dev_set()
    print(run_protocol(dev, shipped).table(), flush=True)


if __name__ == "__main__":
    main()
