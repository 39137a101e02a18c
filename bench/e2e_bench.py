"""End-to-end benchmark (issue 6): raw aiokafka ceiling, seqstream engine, per-event baselines,
latency at 25/50/90 % of the max rate, model step by batch, memory. Same as ``seqstream bench``.

    .venv/bin/python bench/e2e_bench.py            # ~3-4 min on a 2-core machine
    .venv/bin/python bench/e2e_bench.py --quick
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream.tools.bench import main

if __name__ == "__main__":
    sys.exit(main())
