"""Experiment (issue 18): the drop channel (`drop_channel.py`) on the synthetic families scored as a
NAB corpus (session 11's `synthetic_nab.py`) and window by window on `counts` (`counts_misses.py`).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session14/drop_channel_more.py C_FACTOR REF [off]

``off``: the same two reports without the patch (the bundled detector, torch scorer).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))

import counts_misses
import drop_channel
import synthetic_nab

if __name__ == "__main__":
    if "off" not in sys.argv[3:]:
        drop_channel.patch()
    print(f"c factor {drop_channel.C_FACTOR}, reference {drop_channel.REF}, patched {'off' not in sys.argv[3:]}")
    res = synthetic_nab.run([0, 1, 2])  # prints each seed
    keys = list(res[0])
    print("mean: " + ", ".join(f"{k} {sum(r[k] for r in res.values()) / len(res):.2f}" for k in keys), flush=True)
    for seed in (0, 1, 2):
        counts_misses.run(seed)
