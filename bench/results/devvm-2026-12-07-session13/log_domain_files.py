"""Experiment (issue 18): per dev file, FP rows and missed windows of the bundled detector on the NAB
dev files as they are and in the log domain (``log_domain.py``'s copy, path as the first argument).

    .venv/bin/python bench/results/devvm-2026-12-07-session13/log_domain.py /tmp/nablog
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session13/log_domain_files.py /tmp/nablog
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from window_table import table

from models.checkpoint import load_checkpoint
from models.nab import NabCorpus
from models.protocol import DevSet

LABELS = "../shared/data/nab-dev/combined_windows.json"


def main() -> None:
    torch.set_num_threads(1)
    ck = load_checkpoint()
    res = {}
    for name, d in (("linear", "../shared/data/nab-dev/data"), ("log", sys.argv[1])):
        corpus = NabCorpus.load(d, LABELS)
        det = DevSet(d, corpus, ck.model, ck.scoring).detections(ck.scoring)
        res[name] = table(corpus, det, ck.scoring.open_threshold)
        print(name, f"{corpus.score(det, threshold=ck.scoring.open_threshold)['standard'].normalized:.2f}")
    (m_lin, fp_lin), (m_log, fp_log) = res["linear"], res["log"]
    for f in sorted(set(fp_lin) | set(fp_log) | {m[0] for m in m_lin + m_log}):
        a, b = [m[1] for m in m_lin if m[0] == f], [m[1] for m in m_log if m[0] == f]
        print(f"{f:60s} FP {fp_lin.get(f, 0):3d} -> {fp_log.get(f, 0):3d}  missed {a} -> {b}")


if __name__ == "__main__":
    main()
