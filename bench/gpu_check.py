"""GPU check: CUDA vs CPU equality of the Runner and the Silero VAD runner, then the model step for
10k..4M resident streams.

Run on a machine with CUDA (``bash bench/gpu_check.sh``); prints one JSON line per measurement
and a table. Without CUDA it says so and exits 0, so it is safe anywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import Batch, NetConfig, RecurrentForecaster, Runner, ScoringConfig


def _emit(rec: dict) -> None:
    print(json.dumps(rec), flush=True)


def equality(cell: str, layers: int, hidden: int, features: int, tol: float) -> dict:
    torch.manual_seed(7)
    net = RecurrentForecaster(NetConfig(cell=cell, input_size=features, hidden_size=hidden, num_layers=layers))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    runners = {}
    for dev in ("cpu", "cuda"):
        m = RecurrentForecaster(net.config)
        m.load_state_dict(state)
        runners[dev] = Runner(m, ScoringConfig(warmup=10), device=dev, capacity=256)
    rng = np.random.default_rng(0)
    worst_p = worst_s = 0.0
    flags_equal = True
    for step in range(60):
        ids = [f"s{i}" for i in rng.integers(0, 600, 1500)]  # repeats -> waves
        ts = np.full(len(ids), float(step))
        x = (np.sin(step / 5 + rng.normal(0, 1, (len(ids), features))) * 10).astype(np.float32)
        x[rng.random(len(ids)) < 0.002] += 50.0
        out = {dev: r.process(Batch(ids, ts, x)) for dev, r in runners.items()}
        a, b = out["cpu"], out["cuda"]
        ok = a.accepted & b.accepted
        rel = np.abs(a.prediction[ok] - b.prediction[ok]) / (1 + np.abs(a.prediction[ok]))
        worst_p = max(worst_p, float(np.nanmax(rel)))
        worst_s = max(worst_s, float(np.max(np.abs(a.score[ok] - b.score[ok]))))
        flags_equal &= bool((a.accepted == b.accepted).all())
    return {
        "check": "cuda_vs_cpu",
        "cell": cell,
        "layers": layers,
        "hidden": hidden,
        "max_rel_pred_diff": worst_p,
        "max_score_diff": worst_s,
        "accepted_equal": flags_equal,
        "pass": worst_p <= tol and worst_s <= tol * 10 and flags_equal,
    }


@torch.inference_mode()
def model_step(cell: str, hidden: int, resident: int, batch: int, seconds: float) -> dict:
    """gather + normalise + step + score + scatter on device tensors, no host work."""
    dev = torch.device("cuda")
    r = Runner(
        RecurrentForecaster(NetConfig(cell=cell, input_size=1, hidden_size=hidden)),
        ScoringConfig(),
        device=dev,
        capacity=resident,
        max_capacity=resident,
    )
    slab, scorer, model = r.slab, r.scorer, r.model
    x = torch.randn(batch, 1, device=dev)  # [B, 1]
    perm = torch.randperm(resident, device=dev)  # [N]
    n_chunks = max(resident // batch, 1)
    idxs = [perm[k * batch : (k + 1) * batch] for k in range(n_chunks)]  # n x [B]

    def one(i: int) -> None:
        idx = idxs[i % n_chunks]
        h, aux = slab.gather(idx)  # [B, L, K, H], [B, A]
        xn, err = scorer.pre(aux, x)  # [B, 1], [B]
        f, h = model.step(xn, h)  # [B, 1], [B, L, K, H]
        scorer.post(aux, err, f)  # [B, 5]
        slab.scatter(idx, h, aux)

    for i in range(3):
        one(i)
    torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while True:
        one(n)
        n += 1
        if n % 10 == 0:
            torch.cuda.synchronize()
            if time.perf_counter() - t0 > seconds:
                break
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    rate = n * batch / dt
    rec = {
        "check": "model_step",
        "cell": cell,
        "hidden": hidden,
        "resident": resident,
        "batch": batch,
        "stream_steps_per_s": rate,
        "ms_per_batch": dt / n * 1e3,
        "slab_bytes_per_stream": slab.bytes_per_stream,
        "gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    return rec


def runner_process(cell: str, hidden: int, batch: int, seconds: float) -> dict:
    """The whole Runner.process path (host slot map, one H2D, step, one D2H) at a given batch."""
    r = Runner(
        RecurrentForecaster(NetConfig(cell=cell, input_size=1, hidden_size=hidden)),
        ScoringConfig(),
        device="cuda",
        capacity=batch,
    )
    ids = [f"s{i}" for i in range(batch)]
    x = np.random.default_rng(0).normal(size=(batch, 1)).astype(np.float32)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        r.process(Batch(ids, np.full(batch, float(n)), x))
        n += 1
    dt = time.perf_counter() - t0
    rate = n * batch / dt
    return {"check": "runner_process", "cell": cell, "hidden": hidden, "batch": batch, "stream_steps_per_s": rate}


def _pair(cell: str, hidden: int, capacity: int, device: str = "cuda", **second: Any) -> tuple[Runner, Runner]:
    """Two runners with the same weights: eager fp32, and one with ``second``'s options on top."""
    torch.manual_seed(3)
    net = RecurrentForecaster(NetConfig(cell=cell, input_size=1, hidden_size=hidden))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    out = []
    for extra in ({}, second):
        m = RecurrentForecaster(net.config)
        m.load_state_dict(state)
        kw = {"device": device, "capacity": capacity, "max_capacity": capacity, "cuda_graphs": False, **extra}
        out.append(Runner(m, ScoringConfig(warmup=10), **kw))
    return out[0], out[1]


def graphs_equality(cell: str, hidden: int) -> dict:
    """Eager vs CUDA-graph waves on the same batches (repeats -> several waves, odd sizes -> padding)."""
    eager, graphed = _pair(cell, hidden, 4096, cuda_graphs=True)
    g = graphed.graphs
    assert g is not None
    rng = np.random.default_rng(1)
    worst_p = worst_s = 0.0
    same_flags = True
    for step in range(80):
        n = int(rng.integers(1, 3000))
        ids = [f"s{i}" for i in rng.integers(0, 2000, n)]
        ts = np.full(n, float(step))
        x = (np.sin(step / 7 + rng.normal(0, 1, (n, 1))) * 5).astype(np.float32)
        x[rng.random(n) < 0.003] += 40.0
        a, b = eager.process(Batch(ids, ts, x)), graphed.process(Batch(ids, ts, x))
        ok = a.accepted & b.accepted
        worst_p = max(worst_p, float(np.nanmax(np.abs(a.prediction[ok] - b.prediction[ok]), initial=0.0)))
        worst_s = max(worst_s, float(np.max(np.abs(a.score[ok] - b.score[ok]), initial=0.0)))
        same_flags &= bool((a.anomaly == b.anomaly).all() and (a.transition == b.transition).all())
    return {
        "check": "cuda_graphs_equality",
        "cell": cell,
        "hidden": hidden,
        "max_abs_pred_diff": worst_p,
        "max_score_diff": worst_s,
        "flags_equal": same_flags,
        "captures": g.captures,
        "replays": g.replays,
        "pass": worst_p <= 1e-4 and worst_s <= 1e-4 and same_flags,
    }


def graphs_speed(cell: str, hidden: int, resident: int, batches: list[int], seconds: float) -> list[dict]:
    """``Runner._step`` (H2D copy, waves, D2H copy; no host slot map) eager vs CUDA graphs."""
    eager, graphed = _pair(cell, hidden, resident, cuda_graphs=True)
    rng = np.random.default_rng(2)
    out = []
    for r in (eager, graphed):  # make every stream resident
        ids = [f"s{i}" for i in range(resident)]
        r.process(Batch(ids, np.zeros(resident), np.zeros((resident, 1), np.float32)))
    for batch in batches:
        slots = rng.permutation(resident)[:batch].astype(np.int64)
        x = rng.normal(size=(batch, 1)).astype(np.float32)
        row = {"check": "cuda_graphs_speed", "cell": cell, "hidden": hidden, "resident": resident, "batch": batch}
        for name, r in (("eager", eager), ("graphs", graphed)):
            for _ in range(3):
                r._step(x, slots, [0, batch])
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds or n < 5:
                r._step(x, slots, [0, batch])
                n += 1
            dt = (time.perf_counter() - t0) / n
            row[f"{name}_ms"] = dt * 1e3
            row[f"{name}_stream_steps_per_s"] = batch / dt
        row["speedup"] = row["eager_ms"] / row["graphs_ms"]
        out.append(row)
    return out


def half_precision(cell: str, hidden: int, dtype: torch.dtype, device: str = "cuda") -> dict:
    """``Runner(compute_dtype=...)``: the cell step in bf16/fp16 (state and scorer stay fp32) vs fp32."""
    ref, half = _pair(cell, hidden, 2048, device, compute_dtype=str(dtype).replace("torch.", ""))
    rng = np.random.default_rng(4)
    ids = [f"s{i}" for i in range(2000)]
    worst_p = worst_s = 0.0
    flips = total = 0
    for k in range(300):
        x = (np.sin(k / 9 + np.arange(2000)[:, None] / 50) + 0.1 * rng.normal(size=(2000, 1))).astype(np.float32)
        x[rng.random(2000) < 0.002] += 5.0
        a, b = ref.process(Batch(ids, np.full(2000, float(k)), x)), half.process(Batch(ids, np.full(2000, float(k)), x))
        worst_p = max(worst_p, float(np.max(np.abs(a.prediction - b.prediction) / (1 + np.abs(a.prediction)))))
        worst_s = max(worst_s, float(np.max(np.abs(a.score - b.score))))
        flips += int((a.anomaly != b.anomaly).sum())
        total += 2000
    return {
        "check": "half_precision",
        "dtype": str(dtype).replace("torch.", ""),
        "cell": cell,
        "hidden": hidden,
        "steps": 300,
        "max_rel_pred_diff": worst_p,
        "max_score_diff": worst_s,
        "anomaly_flag_flips": flips,
        "events": total,
    }


def vad_equality(streams: int = 48, frames_per_call: int = 3, calls: int = 60, tol: float = 1e-4) -> dict:
    """The Silero VAD runner (``audio`` source) on CUDA vs CPU: probabilities within ``tol``, the same
    speech events, with several frames of a stream per batch (waves through the staging buffer)."""
    from models.errors import SeqstreamError
    from models.silero import FRAME, SileroVAD, VadRunner

    try:
        model = SileroVAD.pretrained()
    except (ImportError, OSError, SeqstreamError) as exc:  # silero-vad not installed here: say so, go on
        return {"check": "vad_cuda_vs_cpu", "pass": True, "skipped": f"{type(exc).__name__}: {exc}"[:200]}
    # a copy each: VadRunner moves its model to its device in place
    runners = {dev: VadRunner(copy.deepcopy(model), device=dev, capacity=64) for dev in ("cpu", "cuda")}
    rng = np.random.default_rng(3)
    t = np.arange(FRAME * frames_per_call * calls) / 16000.0
    # voiced-like bursts (harmonics under a slow envelope) over noise, one pitch and phase per stream
    f0 = rng.uniform(90, 250, (streams, 1))
    env = (np.sin(2 * np.pi * rng.uniform(0.2, 0.6, (streams, 1)) * t) > 0.2).astype(np.float32)
    voiced = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6, (streams, 1))) / k for k in range(1, 6))
    audio = (0.3 * env * voiced + rng.normal(0, 0.01, (streams, len(t)))).astype(np.float32)
    frames = audio.reshape(streams, -1, FRAME)
    ids = [f"call-{k}" for k in range(streams)]
    worst = 0.0
    events_equal = True
    for c in range(calls):
        rows = [(k, c * frames_per_call + i) for i in range(frames_per_call) for k in range(streams)]
        sid = [ids[k] for k, _ in rows]
        ts = np.array([100.0 + i * FRAME / 16000.0 for _, i in rows])
        pcm = np.stack([frames[k, i] for k, i in rows])
        a, b = (runners[dev].process_frames(sid, ts, pcm) for dev in ("cpu", "cuda"))
        worst = max(worst, float(np.abs(a.prob - b.prob).max()))
        events_equal &= [(e.index, e.kind) for e in a.events] == [(e.index, e.kind) for e in b.events]
    return {
        "check": "vad_cuda_vs_cpu",
        "max_abs_prob_diff": worst,
        "events_equal": bool(events_equal),
        "pass": bool(worst < tol and events_equal),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    ap.add_argument("--max-resident", type=int, default=4_000_000)
    ap.add_argument("--only", choices=["all", "graphs"], default="all", help="graphs: CUDA graphs and bf16 only")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 0
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}", flush=True)
    ok = True
    for cell in ("gru", "lstm"):
        rec = graphs_equality(cell, 64)
        ok &= rec["pass"]
        _emit(rec)
    graph_rows = graphs_speed("gru", 128, min(1_000_000, args.max_resident), [1024, 16384, 131072, 1_000_000], 0.3)
    graph_rows += graphs_speed("gru", 64, 100_000, [256, 4096, 65536], 0.3)
    for rec in graph_rows:
        _emit(rec)
    for dt in (torch.bfloat16, torch.float16):
        _emit(half_precision("gru", 64, dt))
    print("\n| cell | hidden | resident | batch | eager ms | graphs ms | speedup | graphs stream-steps/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in graph_rows:
        print(
            f"| {r['cell']} | {r['hidden']} | {r['resident']:,} | {r['batch']:,} | {r['eager_ms']:.3f} | "
            f"{r['graphs_ms']:.3f} | {r['speedup']:.1f}x | {r['graphs_stream_steps_per_s'] / 1e6:,.1f}M |"
        )
    if args.only == "graphs":
        print(f"\ngraphs equality: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    for cell, layers in (("gru", 1), ("lstm", 2)):
        rec = equality(cell, layers, 128, 2, tol=1e-4)
        ok &= rec["pass"]
        _emit(rec)
    rec = vad_equality()
    ok &= rec["pass"]
    _emit(rec)
    rows = []
    for cell in ("gru", "lstm"):
        for hidden in (64, 128):
            for resident in (10_000, 100_000, 1_000_000, 4_000_000):
                if resident > args.max_resident:
                    continue
                for batch in sorted({min(resident, b) for b in (65_536, 1_000_000, resident)}):
                    rec = model_step(cell, hidden, resident, batch, args.seconds)
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                    rows.append(rec)
                    _emit(rec)
    for batch in (1024, 16384, 65536):
        _emit(runner_process("gru", 64, batch, args.seconds))
    print("\n| cell | hidden | resident | batch | stream-steps/s | ms/batch |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['cell']} | {r['hidden']} | {r['resident']:,} | {r['batch']:,} | "
            f"{r['stream_steps_per_s'] / 1e6:,.1f}M | {r['ms_per_batch']:.2f} |"
        )
    print(f"\nequality: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
