"""Experiment (issue 18): the synthetic families scored as a NAB corpus (a proxy for the unseen categories).

``models.synthetic`` families of one seed are written as NAB data files (``timestamp,value``) with
NAB-style windows: each injected anomaly gets a window of 10 % of the file's rows divided by the
file's anomaly count, centred on the anomaly's first row (NAB's labelling rule), merged where they
overlap. Anomaly-free files (``counts_quiet``, ``quiet``) have no window: every alert costs. Scored
with the product's DevSet/NabCorpus (standard profile, the production threshold), per family and
for all families together.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/synthetic_nab.py [--seeds 0 1 2] [--checkpoint CK] [--mult 1 1.5 2 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from models.checkpoint import load_checkpoint
from models.nab import NabCorpus
from models.protocol import DevSet
from models.synthetic import make_families


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%d %H:%M:%S")


def write_corpus(seed: int, root: Path) -> tuple[Path, Path]:
    labels: dict[str, list[list[str]]] = {}
    for fam, series in make_families(seed, 6).items():
        (root / fam).mkdir(parents=True, exist_ok=True)
        for s in series:
            rel = f"{fam}/{s.name}.csv"
            with open(root / rel, "w", encoding="utf-8") as fh:
                fh.write("timestamp,value\n")
                for t, v in zip(s.ts, s.values):
                    fh.write(f"{_stamp(t)},{v:.6g}\n")
            n = len(s.values)
            spans: list[list[int]] = []
            if s.windows:
                half = int(0.1 * n / len(s.windows)) // 2
                for a, _ in sorted(s.windows):
                    lo, hi = max(0, a - half), min(n - 1, a + half)
                    if spans and lo <= spans[-1][1]:
                        spans[-1][1] = max(spans[-1][1], hi)
                    else:
                        spans.append([lo, hi])
            labels[rel] = [[_stamp(s.ts[a]), _stamp(s.ts[b])] for a, b in spans]
    lab = root / "labels.json"
    lab.write_text(json.dumps(labels), encoding="utf-8")
    return root, lab


def run(seeds: list[int], checkpoint: str | None = None) -> dict[int, dict[str, float]]:
    torch.set_num_threads(1)
    ck = load_checkpoint(checkpoint)
    out: dict[int, dict[str, float]] = {}
    for seed in seeds:
        with tempfile.TemporaryDirectory() as d:
            root, lab = write_corpus(seed, Path(d))
            corpus = NabCorpus.load(root, lab)
            dev = DevSet(root, corpus, ck.model, ck.scoring)
            det = dev.detections(ck.scoring)
        row: dict[str, float] = {}
        groups = {
            "counts": ["counts"],
            "counts+quiet": ["counts", "counts_quiet"],
            "shifts": ["shifts"],
            "hourly": ["hourly"],
            "all": ["counts", "counts_quiet", "shifts", "hourly", "quiet"],
        }
        for g, fams in groups.items():
            files = [f for f in dev.files if f.split("/")[0] in fams]
            sub = corpus.subset(files)
            row[g] = sub.score({f: det[f] for f in files}, threshold=ck.scoring.open_threshold)["standard"].normalized
        out[seed] = row
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--mult", type=float, nargs="*", default=None, help="multi-level tail check (multilevel_tail.py)")
    args = ap.parse_args()
    if args.mult:
        import multilevel_tail

        multilevel_tail.patch(tuple(args.mult))
        print("levels z0 x", tuple(args.mult))
    r = run(args.seeds, args.checkpoint)
    keys = list(next(iter(r.values())))
    print("mean: " + ", ".join(f"{k} {np.mean([v[k] for v in r.values()]):.2f}" for k in keys))


if __name__ == "__main__":
    main()
