"""Experiment: can the Runner's batch run in a thread while the event loop's thread does Python work?

torch ops and the numba loops release the GIL, so a thread could in principle overlap the model step
of one 4096-event batch of 10k sensor streams with the decode of the next. This times the Runner
alone, `decode_batch` alone, and both at once in two threads (optional argument: the interpreter's
switch interval in seconds).

    OMP_NUM_THREADS=1 .venv/bin/python bench/results/devvm-2026-12-07-session10/overlap_probe.py [0.0005]
"""

import gc
import sys
import threading
import time

import torch

sys.path.insert(0, "bench")
from source_batch_cost import _records

from models import Batch
from stream.codec.decode import decode_batch
from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings

B, K = 4096, 25


def main() -> None:
    torch.set_num_threads(1)
    if len(sys.argv) > 1:
        sys.setswitchinterval(float(sys.argv[1]))
    settings = Settings(device="cpu", sources=("sensors",))
    pipe = SourcePipeline("sensors", build_runner(settings, "sensors"), settings, Metrics())
    flat = [r for rr in _records("sensors", 10000, 32, time.time() - 3600) for r in rr]
    batches = [flat[i : i + B] for i in range(0, len(flat) - B, B)]
    for b in batches[:15]:  # every stream warm
        pipe.process(b, now=time.time())
    decs = [decode_batch(pipe.wire, b, n_features=1, now=time.time()) for b in batches]
    gc.collect()
    gc.freeze()  # the setup's objects: no full collection walks them during the timings (as the engine does)

    # each Runner call gets batches it has not seen (a replayed event is rejected as out of order, cheaply)
    def run_model(first: int) -> None:
        for d in decs[first : first + K]:
            pipe.runner.process(Batch(d.stream_ids, d.ts, d.x))

    def py_work(first: int) -> None:
        for b in batches[first : first + K]:
            decode_batch(pipe.wire, b, n_features=1, now=time.time())

    t = time.perf_counter()
    run_model(15)
    tm = time.perf_counter() - t
    t = time.perf_counter()
    py_work(15)
    tp = time.perf_counter() - t
    t = time.perf_counter()
    th = threading.Thread(target=run_model, args=(15 + K,))
    th.start()
    py_work(15 + K)
    tp2 = time.perf_counter() - t
    th.join()
    tb = time.perf_counter() - t
    print(
        f"{K} batches of {B}: Runner alone {tm * 1e3:.0f} ms, decode alone {tp * 1e3:.0f} ms, "
        f"serial {(tm + tp) * 1e3:.0f} ms; in two threads: decode done after {tp2 * 1e3:.0f} ms, both {tb * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
