"""The fifteenth session's ``quiet_rate.py`` with scoring fields overridden.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-08-session17/quiet_fields.py \\
        warmup=300 -- --seeds 0 6
"""

from __future__ import annotations

import dataclasses
import runpy
import sys
from pathlib import Path

import models.checkpoint as mc

_SCRIPT = Path(__file__).parents[1] / "devvm-2026-12-07-session15" / "quiet_rate.py"


def main() -> None:
    i = sys.argv.index("--")
    over = dict(kv.split("=") for kv in sys.argv[1:i])
    load0 = mc.load_checkpoint

    def load(path=None):  # type: ignore[no-untyped-def]
        ck = load0(path)
        f = {k: type(getattr(ck.scoring, k))(float(v)) for k, v in over.items()}
        return dataclasses.replace(ck, scoring=dataclasses.replace(ck.scoring, **f))

    mc.load_checkpoint = load  # type: ignore[assignment]
    sys.argv = [str(_SCRIPT), *sys.argv[i + 1 :]]
    sys.path.insert(0, str(_SCRIPT.parent))
    print("fields", over, flush=True)
    runpy.run_path(str(_SCRIPT), run_name="__main__")


if __name__ == "__main__":
    main()
