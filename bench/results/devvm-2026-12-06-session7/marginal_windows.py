"""Experiment (issue 18): how the bundled detector catches the six NAB dev windows that every +-25 % move
of a free parameter can lose (window_flips.py): alert openings in and before each window, the highest
score in it and each channel's highest score (residual, profile, shift).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-06-session7/marginal_windows.py
"""

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.nab import NabCorpus
from models.protocol import DevSet
from models.scoring import Scorer
from models.scoring_config import ScoringConfig

DATA = "../shared/data/nab-dev/data"
LABELS = "../shared/data/nab-dev/combined_windows.json"
MARGINAL = {
    ("machine_temperature_system_failure.csv", 12),
    ("machine_temperature_system_failure.csv", 15),
    ("speed_7578.csv", 33),
    ("TravelTime_387.csv", 25),
    ("occupancy_6005.csv", 29),
    ("rogue_agent_key_updown.csv", 24),
}


@torch.inference_mode()
def scores(dev: DevSet, cfg: ScoringConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """DevSet.detections' loop, keeping the score, the transitions and the channels' scores per row."""
    sc = Scorer(cfg, 1)
    assert sc.calibrated is not None
    xs, lengths = dev._stack(dev.x)
    ph, _ = dev._stack([sc.phases(t) for t in dev.ts])
    n, t_max = len(dev.x), len(xs)
    aux = sc.init_row().expand(n, -1).clone()  # [S, A]
    score, trans = np.zeros((t_max, n), np.float32), np.zeros((t_max, n), np.float32)
    chans = np.zeros((t_max, n, sc.calibrated.n_channels), np.float32)
    for t in range(t_max):
        live = np.flatnonzero(lengths > t)
        idx = torch.from_numpy(live)
        a = aux[idx]  # [s, A]
        _, err = sc.pre(a, torch.from_numpy(xs[t, live]), torch.from_numpy(ph[t, live]))
        out = sc.post(a, err, torch.from_numpy(dev.forecasts[t, live]).unsqueeze(1))
        aux[idx] = a
        score[t, live], trans[t, live] = out[:, sc.SCORE].numpy(), out[:, sc.TRANSITION].numpy()
        chans[t, live] = a[:, sc.calibrated._score].numpy()
    return score, trans, chans, lengths


def main() -> None:
    torch.set_num_threads(1)
    corpus = NabCorpus.load(DATA, LABELS)
    ck = load_checkpoint()
    dev = DevSet(DATA, corpus, ck.model, ck.scoring)
    score, trans, chans, lengths = scores(dev, ck.scoring)
    for i, f in enumerate(dev.files):
        win = corpus._win[f]
        for w in np.unique(win[win >= 0]):
            if (f.split("/")[-1], int(w)) not in MARGINAL:
                continue
            rows = np.flatnonzero(win == w)
            a, b = int(rows[0]), int(rows[-1])
            n = lengths[i]
            s, tr, c = score[:n, i], trans[:n, i], chans[:n, i]
            opens = np.flatnonzero(tr > 0).tolist()
            print(
                f"{f.split('/')[-1]} window {w}: rows {a}-{b} (width {b - a + 1}); "
                f"alerts open at {[o - a for o in opens if a <= o <= b]} (rows from its start), "
                f"{[o - a for o in opens if a - 300 <= o < a]} within 300 rows before; "
                f"highest score {s[a : b + 1].max():.3f} at +{int(s[a : b + 1].argmax())}; "
                f"per channel {[round(float(v), 3) for v in c[a : b + 1].max(0)]}"
            )


if __name__ == "__main__":
    main()
