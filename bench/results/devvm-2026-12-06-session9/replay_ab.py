"""Experiment: NAB dev replay (``seqstream evaluate nab``) with the sequence step on and off, alternating.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-06-session9/replay_ab.py [PAIRS]

Prints each run's replay line and scores; the scores must be the same both ways.
"""

import subprocess
import sys

CODE = """
import sys
from models.runner import Runner
init = Runner.__init__
def patched(self, *a, **k):
    init(self, *a, **k)
    self.sequence = {on}
Runner.__init__ = patched
from stream.cli import main
sys.exit(main(["evaluate", "nab", "../shared/data/nab-dev/data", "../shared/data/nab-dev/combined_windows.json"]))
"""

if __name__ == "__main__":
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    for _ in range(pairs):
        for on in (False, True):
            out = subprocess.run([sys.executable, "-c", CODE.format(on=on)], capture_output=True, text=True).stdout
            lines = [ln for ln in out.splitlines() if "replayed" in ln or ln.startswith(("fixed 0.5 ", "swept "))]
            print(f"sequence={on}: " + " | ".join(lines[:3]), flush=True)
