"""Experiment (issue 18): the alert openings on the ``shifts`` files of the synthetic corpus as NAB
(seed 2, ``synthetic_nab.py``'s NAB windows), with the release (the bundle) and without it
(``hold_release`` 0, the twelfth session's detector): (row, NAB window id; -1 outside).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session13/seed2_shifts_alerts.py
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))

from synthetic_nab import write_corpus

from models.checkpoint import load_checkpoint
from models.nab import NabCorpus
from models.protocol import DevSet


def main() -> None:
    torch.set_num_threads(1)
    ck = load_checkpoint()
    with tempfile.TemporaryDirectory() as d:
        root, lab = write_corpus(2, Path(d))
        corpus = NabCorpus.load(root, lab)
        dev = DevSet(root, corpus, ck.model, ck.scoring)
        for name, sc in (("release", ck.scoring), ("hold alone", dataclasses.replace(ck.scoring, hold_release=0.0))):
            det = dev.detections(sc)
            for f in dev.files:
                if f.startswith("shifts"):
                    w = corpus._win[f]
                    print(name, f, [(int(i), int(w[i])) for i in np.flatnonzero(det[f] >= sc.open_threshold)])


if __name__ == "__main__":
    main()
