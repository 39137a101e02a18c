"""Micro-benchmark of the model step: stream-steps per second, batched vs one call per event.

Modes (one JSON line per scenario, then a markdown table; ratios come from the same run):

* ``batched``        ``Runner.process(Batch)`` with ``B`` distinct resident streams per call: slot
                     map, gather, scorer, model step, scatter, one host->device and one device->host
                     copy, Results/alerts. The Batch objects are built before the timed loop; their
                     shared ``ts`` array is advanced in place each call so no event is rejected.
* ``model_step``     device work only: ``slab.gather`` + ``scorer.pre`` + ``model.step`` +
                     ``scorer.post`` + ``slab.scatter`` with a fixed index tensor, under
                     ``torch.inference_mode()``; no host bookkeeping, no copies.
* ``per_event``      the naive baseline: one ``Runner.process`` call with a batch of 1 per event
                     (events cycle over resident streams; the 1-event Batch objects are prebuilt).
* ``per_event_step`` the raw ``model.step`` on a batch of 1 per event (no scorer, no slab).

Each cell is time-boxed (adaptive repetition: warm up, calibrate, then 5 timed repeats; the median is
reported). With ``--threads 1`` on CPU a repeat counts only if the process had >= 90 % of a core (CPU
time / wall time), and a busy machine gets extra repeats (up to 12). On CUDA the clock is read only
after ``torch.cuda.synchronize()``.

Usage (from the repository root)::

    python bench/step_bench.py                       # full run, 1 thread, cpu (+cuda if present)
    python bench/step_bench.py --quick               # ~25 s smoke run
    python bench/step_bench.py --threads 2 --device cpu --json-out step.json
    python bench/step_bench.py --device cuda --json-out step-cuda.json   # GPU only (adds B up to 65536)

``--cells gru`` / ``--hidden 64`` / ``--budget SECONDS`` narrow or lengthen a run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable without an install
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

import models
from models import Batch, NetConfig, RecurrentForecaster
from stream.tools.bench.step import (
    MAX_REPEATS,
    REPEATS,
    Timing,
    bench_batched,
    bench_model_step,
    check_accepted,
    measure,
    time_calls,
    timed_repeats,
    untrained_runner,
)

CPU_BATCHES = (1, 8, 64, 512, 1024, 4096, 8192)
CUDA_EXTRA_BATCHES = (16384, 32768, 65536)
HIDDEN = (64, 128)
CELLS = ("gru", "lstm")
PER_EVENT_STREAMS = 1024  # resident streams the per-event baseline cycles through


# -- the per-event baselines (the batched cells are stream.tools.bench.step's) ----------------------
def bench_per_event(
    cell: str, hidden: int, device: torch.device, budget_s: float, clean_share: float | None = None
) -> Timing:
    """One ``Runner.process`` per event; the 1-event Batch objects are built outside the timed loop."""
    runner = untrained_runner(cell, hidden, device, PER_EVENT_STREAMS)
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((PER_EVENT_STREAMS, 1, 1)).astype(np.float32)

    def events(start: int, n: int) -> list[Batch]:
        out = []
        for j in range(start, start + n):
            s = j % PER_EVENT_STREAMS
            out.append(Batch([f"s{s}"], np.array([float(j // PER_EVENT_STREAMS)]), xs[s]))
        return out

    # warm-up: make every stream resident, then calibrate on a slice
    j = 0
    for b in events(j, PER_EVENT_STREAMS):
        runner.process(b)
    j += PER_EVENT_STREAMS
    calib = events(j, 200)
    t0 = time.perf_counter()
    for b in calib:
        runner.process(b)
    per = (time.perf_counter() - t0) / len(calib)
    j += len(calib)
    n = max(200, math.ceil(0.9 * budget_s / REPEATS / per))
    nxt = {"j": j}

    def timed() -> tuple[float, float]:
        evs = iter(events(nxt["j"], n))  # built before the clock starts
        nxt["j"] += n

        def one() -> None:
            runner.process(next(evs))

        return time_calls(one, n, device)

    t = timed_repeats(timed, n, device, clean_share)
    check_accepted(runner, "per_event")
    return t


def bench_per_event_step(
    cell: str, hidden: int, device: torch.device, budget_s: float, clean_share: float | None = None
) -> Timing:
    torch.manual_seed(0)
    model = RecurrentForecaster(NetConfig(cell=cell, input_size=1, hidden_size=hidden)).to(device).eval()  # type: ignore[arg-type]
    x = torch.randn(1, 1, device=device)  # [1, 1]
    st = {"h": model.zero_state(1, device)}  # [1, L, K, H]

    def call() -> None:
        with torch.inference_mode():
            _, st["h"] = model.step(x, st["h"])

    return measure(call, device, budget_s, clean_share)


# -- driver ---------------------------------------------------------------------------------------
def _record(
    device: torch.device, cell: str, hidden: int, batch: int, mode: str, timing: Timing, threads: int
) -> dict[str, Any]:
    times = timing.reported()
    sec = statistics.median(times)
    rate = batch / sec
    return {
        "device": device.type,
        "cell": cell,
        "hidden": hidden,
        "batch": batch,
        "mode": mode,
        "stream_steps_per_s": round(rate, 1),
        "us_per_stream_step": round(1e6 / rate, 4),
        "us_per_call": round(sec * 1e6, 2),
        "best_stream_steps_per_s": round(batch / min(times), 1),
        "spread_pct": round(100 * (max(times) - min(times)) / sec, 1),
        "cpu_share_pct": round(100 * sum(timing.cpu) / sum(timing.wall), 1),  # process CPU / wall, all repeats
        "repeats": len(timing.wall),
        "clean_repeats": sum(timing.clean()),
        "calls": timing.calls,
        "threads": threads,
    }


def _fmt_rate(r: float) -> str:
    if r >= 1e6:
        return f"{r / 1e6:.2f} M"
    if r >= 1e3:
        return f"{r / 1e3:.1f} k"
    return f"{r:.0f}"


def markdown(records: list[dict[str, Any]]) -> str:
    """Two tables: per-event baselines, then batched rows with ratios against them (same run)."""
    by_key = {(r["device"], r["cell"], r["hidden"], r["mode"], r["batch"]): r for r in records}

    def rate(dev: str, cell: str, h: int, mode: str, b: int = 1) -> float | None:
        r = by_key.get((dev, cell, h, mode, b))
        return float(r["stream_steps_per_s"]) if r else None

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.0f}×" if a and b and a / b >= 10 else (f"{a / b:.1f}×" if a and b else "–")

    combos = list(dict.fromkeys((r["device"], r["cell"], r["hidden"]) for r in records))
    lines = [
        "Per-event baselines (one call per event, batch of 1):",
        "",
        "| device | cell | hidden | per_event: Runner.process steps/s | µs/event | per_event_step: model.step steps/s "
        "| µs/event |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for dev, cell, h in combos:
        cols = []
        for mode in ("per_event", "per_event_step"):
            v = rate(dev, cell, h, mode)
            cols.append(f"{_fmt_rate(v)} | {1e6 / v:.1f}" if v else "– | –")
        lines.append(f"| {dev} | {cell} | {h} | {cols[0]} | {cols[1]} |")
    lines += [
        "",
        "Batched. steps/s, µs and ratios: median over the clean timed repeats (a repeat is clean when the "
        "process got >= --clean-share of a core; all repeats count with --threads > 1 or on CUDA). "
        "best, spread = (slowest - fastest) / median, CPU share = process CPU time / wall time and "
        "clean = clean/all repeats describe the batched cell; a CPU share well under 100% with --threads 1 "
        "means other work on the machine took the core.",
        "",
        "| device | cell | hidden | batch | batched steps/s | µs/stream-step | best | spread | CPU share | clean "
        "| model_step steps/s | batched ÷ per_event | model_step ÷ per_event_step |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dev, cell, h in combos:
        pe, ps = rate(dev, cell, h, "per_event"), rate(dev, cell, h, "per_event_step")
        sizes = sorted({k[4] for k in by_key if k[:3] == (dev, cell, h) and k[3] in ("batched", "model_step")})
        for b in sizes:
            rec = by_key.get((dev, cell, h, "batched", b))
            br, ms = rate(dev, cell, h, "batched", b), rate(dev, cell, h, "model_step", b)
            us = f"{1e6 / br:.3f}" if br else "–"
            spread = f"{rec['spread_pct']:.0f}%" if rec else "–"
            best = _fmt_rate(rec["best_stream_steps_per_s"]) if rec else "–"
            share = f"{rec['cpu_share_pct']:.0f}%" if rec else "–"
            clean = f"{rec['clean_repeats']}/{rec['repeats']}" if rec else "–"
            lines.append(
                f"| {dev} | {cell} | {h} | {b} | {_fmt_rate(br) if br else '–'} | {us} | {best} | {spread} "
                f"| {share} | {clean} "
                f"| {_fmt_rate(ms) if ms else '–'} | {ratio(br, pe)} | {ratio(ms, ps)} |"
            )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "loadavg_start": [round(v, 2) for v in os.getloadavg()],  # other work on the box skews numbers
    }
    # the models/ sources the numbers belong to (the repository may have no commit to name)
    src = sorted(Path(models.__file__).parent.glob("*.py"))
    info["models_sha256"] = hashlib.sha256(b"".join(f.read_bytes() for f in src)).hexdigest()[:16]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short time boxes (~25 s in all)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda", "all"),
        default="all",
        help="all = cpu, plus cuda when torch sees one (default)",
    )
    p.add_argument("--json-out", type=Path, help="also write machine info + all records to this JSON file")
    p.add_argument("--budget", type=float, help="seconds per cell (default 1.0, --quick 0.2)")
    p.add_argument(
        "--clean-share",
        type=float,
        default=0.9,
        help="with --threads 1 on CPU, count a repeat only when the process got at least this share of a core\n"
        f"(CPU time / wall time); busy machines get extra repeats, up to {MAX_REPEATS} in all. 0 counts every repeat",
    )
    p.add_argument("--cells", default=",".join(CELLS), help="comma list of gru,lstm")
    p.add_argument("--hidden", default=",".join(map(str, HIDDEN)), help="comma list of hidden sizes")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    # with one thread on CPU a repeat counts only when the process had the core (see stream.tools.bench.step)
    clean_share = args.clean_share if args.threads == 1 and args.clean_share > 0 else None
    budget = args.budget or (0.2 if args.quick else 1.0)
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    elif args.device == "cuda":
        p.error("--device cuda: torch sees no CUDA device")
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    hiddens = [int(h) for h in args.hidden.split(",") if h.strip()]

    info = machine()
    info.update(threads=args.threads, budget_s=budget, clean_share=clean_share, argv=sys.argv[1:])
    print(json.dumps({"meta": info}), flush=True)
    records: list[dict[str, Any]] = []
    t_start = time.perf_counter()

    def emit(rec: dict[str, Any]) -> None:
        records.append(rec)
        print(json.dumps(rec), flush=True)

    for dev in devices:
        batches = CPU_BATCHES + (CUDA_EXTRA_BATCHES if dev.type == "cuda" else ())
        for cell in cells:
            for h in hiddens:
                t = bench_per_event(cell, h, dev, budget, clean_share)
                emit(_record(dev, cell, h, 1, "per_event", t, args.threads))
                t = bench_per_event_step(cell, h, dev, budget, clean_share)
                emit(_record(dev, cell, h, 1, "per_event_step", t, args.threads))
                for b in batches:
                    t = bench_batched(cell, h, b, dev, budget, clean_share)
                    emit(_record(dev, cell, h, b, "batched", t, args.threads))
                    t = bench_model_step(cell, h, b, dev, budget, clean_share)
                    emit(_record(dev, cell, h, b, "model_step", t, args.threads))

    info["wall_s"] = round(time.perf_counter() - t_start, 1)
    info["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    print()
    print(
        f"<!-- torch {info['torch']}, {info['cpu']} ({info['cpu_count']} CPUs), threads={args.threads}, "
        f"{info['date']}, {info['wall_s']} s -->"
    )
    print(markdown(records))
    if args.json_out:
        args.json_out.write_text(json.dumps({"meta": info, "results": records}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
