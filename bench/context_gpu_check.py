"""CUDA check of the bundled detector (its own scoring: calibrated since issue 18): NAB replay on CPU
and on CUDA (CUDA graphs on), per-file difference of the detection signal and both NAB tables, then
detector vs forecaster rates on CUDA, plain vs the bundled scoring in the same run.

    python3 bench/context_gpu_check.py NAB_DIR    # NAB_DIR holds data/ and combined_windows.json
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.evaluate import bench_detector, evaluate_nab
from models.nab import NabCorpus, read_scores
from models.scoring_config import ScoringConfig


def main() -> int:
    nab = Path(sys.argv[1])
    data, labels = nab / "data", nab / "combined_windows.json"
    files = NabCorpus.load(data, labels).files
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        scores = {}
        devs = sys.argv[2:4] or ["cpu", "cuda"]  # a dry run on a CPU machine: cpu cpu
        for dev in devs:
            t0 = time.perf_counter()
            rep = evaluate_nab(data, labels, Path(tmp) / dev, device=dev)
            print(f"== {dev}: {rep.events} events in {time.perf_counter() - t0:.1f} s\n{rep.table()}", flush=True)
            scores[dev] = read_scores(Path(tmp) / dev, files)
        a, b = scores[devs[0]], scores[devs[-1]]
        diff = max(float(np.abs(a[f] - b[f]).max()) for f in files)
        flips = sum(int(((a[f] >= 0.5) != (b[f] >= 0.5)).sum()) for f in files)
        ok = diff < 1e-3
        print(
            f"max |score cpu - cuda| = {diff:.2e}, rows crossing 0.5 differently: {flips}  {'PASS' if ok else 'FAIL'}"
        )
    ck = load_checkpoint()
    plain = save_checkpoint(Path(tempfile.mkdtemp()) / "plain.pt", ck.model, ScoringConfig(), ck.meta)
    print("| scoring | batch | forecaster steps/s | detector steps/s | detector/forecaster |")
    dev = devs[-1]
    sizes = (1024, 16384, 262144, 1048576) if dev == "cuda" else (256,)
    for b in sizes:
        for name, path in (("plain", plain), ("bundled", None)):
            r = bench_detector(path, batch_sizes=(b,), seconds=1.0, device=dev)[0]
            print(
                f"| {name} | {b} | {r['model_steps_per_s']:,.0f} | {r['detector_steps_per_s']:,.0f} "
                f"| {r['detector_cost']:.2f} |",
                flush=True,
            )
    if dev == "cuda":
        torch.cuda.synchronize()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
