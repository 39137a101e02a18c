"""Experiment (issue 18): all dev, the synthetic corpus as NAB and counts_quiet's false alerts per 10k
over the open threshold, for the shipped scorer (``--set key=value``: with config overrides) or a
patched one (``--halfnormal``: the half-normal null of ``halfnormal_null.py`` on every channel).
Channel scores are recorded once per corpus and the shipped lifecycle (blocks at R 200) replayed at
each threshold.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session12/threshold_sweep.py [--halfnormal] --thr 0.3 0.4 0.5
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))
sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--halfnormal", action="store_true")
    ap.add_argument("--thr", type=float, nargs="+", default=[0.3, 0.35, 0.4, 0.45, 0.5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. profile_rate=0.05")
    args = ap.parse_args()
    if args.halfnormal:
        import halfnormal_null

        halfnormal_null.patch((0, 1, 2))
    import synthetic_nab
    from lifecycle_probe import dev_set, rule_blocks, traces, windows_and_fp

    from models.checkpoint import load_checkpoint
    from models.nab import NabCorpus
    from models.protocol import DevSet

    corpus, shipped, dev = dev_set()
    shipped = dataclasses.replace(shipped, hold_shift=False)  # as recorded: before hold_shift (replayed rules)
    for kv in args.set:
        key, val = kv.split("=")
        shipped = dataclasses.replace(shipped, **{key: type(getattr(shipped, key))(val)})
    print("config overrides:", args.set, flush=True)
    tr = traces(dev, shipped)

    def at(c, thr):  # type: ignore[no-untyped-def]
        return dataclasses.replace(c, open_threshold=thr, close_threshold=min(c.close_threshold, thr))

    for thr in args.thr:
        c = at(shipped, thr)
        det = {f: rule_blocks(c, tr[0][i], tr[1][i]) for i, f in enumerate(dev.files)}
        s = corpus.score(det, threshold=thr)["standard"].normalized
        w, fp = windows_and_fp(corpus, det, thr)
        print(f"dev thr {thr}: {s:.2f} ({w}w {fp}fp)", flush=True)
    groups = {"counts": ["counts"], "shifts": ["shifts"], "hourly": ["hourly"],
              "all": ["counts", "counts_quiet", "shifts", "hourly", "quiet"]}  # fmt: skip
    res: dict[float, list[list[float]]] = {t: [] for t in args.thr}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as d:
            root, lab = synthetic_nab.write_corpus(seed, Path(d))
            sc = NabCorpus.load(root, lab)
            sd = DevSet(root, sc, load_checkpoint().model, shipped)
            st = traces(sd, shipped)
        for thr in args.thr:
            c = at(shipped, thr)
            det = {f: rule_blocks(c, st[0][i], st[1][i]) for i, f in enumerate(sd.files)}
            row = []
            for fams in groups.values():
                files = [f for f in sd.files if f.split("/")[0] in fams]
                row.append(sc.subset(files).score({f: det[f] for f in files}, threshold=thr)["standard"].normalized)
            q = [i for i, f in enumerate(sd.files) if f.split("/")[0] == "counts_quiet"]
            n_alerts = sum(int((det[sd.files[i]] > 0).sum()) for i in q)
            n_ev = sum(len(st[0][i]) for i in q)
            row.append(1e4 * n_alerts / n_ev)
            res[thr].append(row)
    for thr in args.thr:
        m = np.mean(res[thr], 0)
        print(f"synthetic thr {thr}: " + ", ".join(f"{g} {v:.2f}" for g, v in zip([*groups, "cq/10k"], m)), flush=True)


if __name__ == "__main__":
    main()
