"""What every scorer probe of this folder prints, after it has patched the scorer: the synthetic
families of seed 0 (``seeds``: more), the synthetic families as a NAB corpus (seeds 0-2,
``synthetic_nab.py``), the dev R landscape of the shipped rule and, unless ``table`` is off, the
sensitivity table at R 200 (the tenth session's ``r_landscape.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))


def before_step_scale() -> None:
    """Make the bundled checkpoint load with ``step_scale`` off: the configuration these probes
    started from (the tenth session's shipped detector), whatever the bundle holds now. Call it
    before anything imports ``load_checkpoint``."""
    import dataclasses

    import models.checkpoint as mc

    bundled = mc.load_checkpoint

    def load(path: str | None = None) -> mc.Checkpoint:
        ck = bundled(path)
        return ck if path else dataclasses.replace(ck, scoring=dataclasses.replace(ck.scoring, step_scale=False))

    mc.load_checkpoint = load  # type: ignore[assignment]


def report(dev: bool = True, table: bool = True, seeds: int = 1, nab: bool = True) -> None:
    import r_landscape
    import synthetic_nab
    from lifecycle_probe import dev_set, traces

    from models.checkpoint import load_checkpoint
    from models.synthetic import evaluate_synthetic

    sc = load_checkpoint().scoring
    for seed in range(seeds):
        q = {row.family: row for row in evaluate_synthetic(scoring=sc, seed=seed)}
        cells = (
            f"{f} rec {q[f].recall:.2f} prec {q[f].precision:.2f} fp/10k {q[f].false_per_10k:.2f}"
            if q[f].windows
            else f"{f} fp/10k {q[f].false_per_10k:.2f} ({q[f].alerts})"
            for f in q
        )
        print(f"synthetic seed {seed}: " + ", ".join(cells), flush=True)
    if nab:
        synthetic_nab.run([0, 1, 2])
    if not dev:
        return
    corpus, shipped, dev_set_ = dev_set()
    base_tr = traces(dev_set_, shipped)
    print("R landscape (R_other = R/2): all-dev standard, alerts")
    for rr in (50, 100, 150, 200, 250):
        s, n = r_landscape.score(corpus, dev_set_.files, base_tr, r_landscape.with_r(shipped, rr))
        print(f"  R {rr}: {s:.2f} ({n})", flush=True)
    if table:
        moved = r_landscape.moved_traces(dev_set_, shipped)
        r_landscape.table(corpus, dev_set_.files, base_tr, moved, shipped, 200)
