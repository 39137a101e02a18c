"""Experiment (issue 18): NAB dev with each file in the domain ``domain_tails.py`` chooses for it (log for
art_load_balancer_spikes, ec2_request_latency, nyc_taxi, TravelTime_387, occupancy_6005, speed_6005;
linear for the rest): the two whole runs' detections (as they are, and ``log_domain.py``'s copy, the
first argument) composed per file. An upper bound of a per-stream switch: a causal one would run linear
until the choice at event 2,000.

    .venv/bin/python bench/results/devvm-2026-12-07-session13/log_domain.py /tmp/nablog
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session13/domain_tails_dev.py /tmp/nablog
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
LOG = {
    "artificialWithAnomaly/art_load_balancer_spikes.csv",
    "realKnownCause/ec2_request_latency_system_failure.csv",
    "realKnownCause/nyc_taxi.csv",
    "realTraffic/TravelTime_387.csv",
    "realTraffic/occupancy_6005.csv",
    "realTraffic/speed_6005.csv",
}


def main() -> None:
    torch.set_num_threads(1)
    ck = load_checkpoint()
    lin_c = NabCorpus.load("../shared/data/nab-dev/data", LABELS)
    lin = DevSet("../shared/data/nab-dev/data", lin_c, ck.model, ck.scoring).detections(ck.scoring)
    lg = DevSet(sys.argv[1], NabCorpus.load(sys.argv[1], LABELS), ck.model, ck.scoring).detections(ck.scoring)
    det = {f: (lg if f in LOG else lin)[f] for f in lin}
    s = lin_c.score(det, threshold=ck.scoring.open_threshold)["standard"].normalized
    missed, fps = table(lin_c, det, ck.scoring.open_threshold)
    print(f"dev, each file in its chosen domain: {s:.2f} ({39 - len(missed)} windows, {sum(fps.values())} FP rows)")
    print(f"  missed {[m[1] for m in missed]}")


if __name__ == "__main__":
    main()
