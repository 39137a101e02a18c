"""Experiment (issue 18): the detector in the log domain (``--sqrt``: the square-root domain, the
Poisson variance stabiliser). Writes a copy of the NAB dev files with ``log1p(value)`` (``sqrt(value)``)
wherever a file has no negative value (every file but art_daily_flatmiddle; a whole-file
rule, so an upper bound on what a causal switch could do), for ``seqstream evaluate nab --protocol``.
Motivation: ``counts_ratio.py``: the false alerts on ``counts_quiet`` fire at 2-5x the seasonal level,
the injected surges at 5-16x; in log units the two sets are further apart than in the linear units the
channels measure.

    .venv/bin/python bench/results/devvm-2026-12-07-session13/log_domain.py /tmp/nablog [--sqrt]
    OMP_NUM_THREADS=1 .venv/bin/seqstream evaluate nab /tmp/nablog ../shared/data/nab-dev/combined_windows.json \\
        --protocol -o /tmp/protolog      # output: log_domain_protocol.txt
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

SRC = Path("../shared/data/nab-dev/data")


def main() -> None:
    out = Path(sys.argv[1])
    f = np.sqrt if "--sqrt" in sys.argv else np.log1p
    for p in sorted(SRC.glob("*/*.csv")):
        with open(p, encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        v = np.array([float(r["value"]) for r in rows])
        t = f(v) if v.min() >= 0 else v
        dst = out / p.relative_to(SRC)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(dst, "w", encoding="utf-8") as fh:
            fh.write("timestamp,value\n")
            fh.writelines(f"{r['timestamp']},{x:.8g}\n" for r, x in zip(rows, t, strict=True))
        print(p.relative_to(SRC), f.__name__ if v.min() >= 0 else "linear")


if __name__ == "__main__":
    main()
