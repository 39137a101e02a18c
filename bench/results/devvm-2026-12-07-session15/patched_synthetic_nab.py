"""Experiment (issue 18): the synthetic checks (families and the corpus as NAB, the fourteenth session's
``with_scoring.py``) with a patched scorer: ``halfnormal`` (the shift channel under a half-normal null,
``halfnormal_shift.py``) or ``folded CH ...`` (``folded_shift.py`` on those channels). Torch scorer.

Measured on the bundle of 42fce55 (before the profile channel's own null): ``halfnormal_shift_synthetic_nab.txt``
(``halfnormal --seeds 0 1 2 3 4 5``) and ``folded_profile_synthetic_nab.txt`` (``folded 1 --seeds ...``).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session15/patched_synthetic_nab.py folded 1 --seeds 0 1 2 3 4 5
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session14"))

from models.calibrated import CalibratedChannels


def main() -> None:
    kind, rest = sys.argv[1], sys.argv[2:]
    i = rest.index("--seeds") if "--seeds" in rest else len(rest)
    if kind == "halfnormal":
        import halfnormal_shift as hn

        CalibratedChannels.calibrate = hn.calibrate  # type: ignore[method-assign]
        CalibratedChannels.init_row = hn.init_row  # type: ignore[method-assign]
        CalibratedChannels._k = hn.k  # type: ignore[method-assign]
    else:
        import folded_shift

        folded_shift.patch([int(c) for c in rest[:i]])
    import with_scoring

    sys.argv = [sys.argv[0], *rest[i:]]
    with_scoring.main()


if __name__ == "__main__":
    main()
