"""Experiment (issue 18, seventeenth session): ``rearm`` with a longer calm before an alert resolves and a
channel re-arms (close_after = QUIET = q), against the shipped blocks, replayed in numpy over recorded
channel scores (the tenth session's ``lifecycle_probe``): all dev (standard, the production threshold;
windows, FP rows) and the synthetic families of one seed as a NAB corpus (alerts per family, the
corpus's standard score per family and all together).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-08-session17/flap_scan.py [--seed 0] [--q 10 20 40 80]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from lifecycle_probe import DATA, LABELS, rule_blocks, rule_rearm, traces, windows_and_fp
from synthetic_nab import write_corpus

from models.checkpoint import load_checkpoint
from models.nab import NabCorpus
from models.protocol import DevSet


def _rules(c, qs):  # type: ignore[no-untyped-def]
    out = {"blocks": lambda sc, st: rule_blocks(c, sc, st)}
    for q in qs:
        cq = dataclasses.replace(c, close_after=q)
        out[f"rearm q{q}"] = lambda sc, st, cq=cq, q=q: rule_rearm(cq, sc, st, low=c.close_threshold, quiet=q)
    return out


def _report(name: str, corpus: NabCorpus, dev: DevSet, c, qs, families: bool) -> None:  # type: ignore[no-untyped-def]
    chans, steps = traces(dev, c)
    for label, rule in _rules(c, qs).items():
        det = {f: rule(chans[i], steps[i]) for i, f in enumerate(dev.files)}
        s = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
        w, fp = windows_and_fp(corpus, det, c.open_threshold)
        line = f"{name} {label}: {s:.2f} ({w} windows, {fp} FP rows)"
        if families:
            fams = sorted({f.split("/")[0] for f in dev.files})
            cells = []
            for fam in fams:
                sub = {f: d for f, d in det.items() if f.startswith(fam + "/")}
                n = sum(int((d > 0).sum()) for d in sub.values())
                cells.append(f"{fam} {n} alerts")
            line += "; " + ", ".join(cells)
        print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--q", type=int, nargs="+", default=[10, 20, 40, 80])
    ap.add_argument("--no-dev", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ck = load_checkpoint()
    c = ck.scoring
    if not a.no_dev:
        corpus = NabCorpus.load(DATA, LABELS)
        _report("dev", corpus, DevSet(DATA, corpus, ck.model, c), c, a.q, False)
    with tempfile.TemporaryDirectory() as tmp:
        data, labels = write_corpus(a.seed, Path(tmp))
        corpus = NabCorpus.load(data, labels)
        _report(f"synthetic seed {a.seed}", corpus, DevSet(data, corpus, ck.model, c), c, a.q, True)


if __name__ == "__main__":
    main()
