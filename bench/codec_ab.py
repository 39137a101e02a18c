"""Same-process A/B of the input decode and the predictions encode, per source.

Decode: ``careful`` is the per-record path (``stream.codec._decode_careful``, the algorithm every
record took before the fast path), ``fast`` is ``decode_batch`` (msgspec + checks on arrays,
careful path only for records it cannot vouch for); ``--rev REV`` adds ``REV``'s
``decode_batch`` loaded from git (e.g. ``--rev HEAD`` before the change is committed). Encode:
``encode_prediction`` once per event vs ``encode_predictions`` once per batch, results kept alive
as the pipeline keeps them. Variants run interleaved on the same records, ``--reps`` rounds in
alternating order; the table shows the median per variant and the ratio to ``careful``. Every
variant's result is checked against ``careful`` first (bit-identical arrays, same errors).

    .venv/bin/python bench/codec_ab.py                      # 5 batches of 4096 per source, 7 rounds
    .venv/bin/python bench/codec_ab.py --rev HEAD --bad 0.02   # 2 % invalid records mixed in
"""

from __future__ import annotations

import argparse
import base64
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.codec import decode as codec  # noqa: E402
from stream.codec import encode  # noqa: E402
from stream.sources import SOURCES  # noqa: E402
from stream.sources.simulator import Simulator  # noqa: E402

N_FEATURES = {"sensors": 1, "machines": 4, "speech": 8, "ticks": 4, "audio": 512}
NOW = 1_700_000_000.0
BAD = [b"{", b'{"stream": "x"}', b'{"stream": "s", "ts": 1, "values": [NaN]}', b"[1]", None]


def payloads(source: str, n: int, seed: int) -> list[tuple[bytes, bytes]]:
    """``n`` (key, value) pairs of ``source`` as the simulator (or, for audio, random frames) writes them."""
    if source == "audio":  # the audio simulator needs speech synthesis; noise frames have the same shape
        rng = np.random.default_rng(seed)
        out = []
        for i in range(n):
            sid = f"mic-{i % 1000:04d}"
            pcm = base64.b64encode(rng.integers(-3000, 3000, 512).astype("<i2").tobytes()).decode()
            out.append((sid.encode(), orjson.dumps({"stream": sid, "ts": NOW - n + i, "pcm": pcm})))
        return out
    sim = Simulator(source, n_streams=1000, seed=seed)
    out = []
    k = 0
    while len(out) < n:
        out += [(e.key(), e.value()) for e in sim.round(NOW - 10_000 + k)]
        k += 1
    return out[:n]


def records(source: str, n: int, seed: int, bad: float) -> list[SimpleNamespace]:
    rng = np.random.default_rng(seed + 1)
    out = []
    for i, (key, value) in enumerate(payloads(source, n, seed)):
        v: bytes | None = value
        if rng.random() < bad:
            v = BAD[int(rng.integers(len(BAD)))]
        out.append(SimpleNamespace(topic=source, partition=i % 8, offset=i, key=key, value=v, timestamp=0))
    return out


def load_rev(rev: str) -> Any:
    """``stream/codec.py`` of a git revision (before the restructuring into stream/codec/ and stream/sources/)
    as a module of its own."""
    src = subprocess.run(["git", "show", f"{rev}:stream/codec.py"], cwd=ROOT, check=True, capture_output=True).stdout
    mod = types.ModuleType(f"stream._codec_{rev}")
    mod.__package__ = "stream"
    sys.modules[mod.__name__] = mod
    exec(compile(src, f"{rev}:stream/codec.py", "exec"), mod.__dict__)
    return mod


def same(a: codec.Decoded, b: codec.Decoded) -> bool:
    return (
        a.index.tolist() == b.index.tolist()
        and a.stream_ids == b.stream_ids
        and a.ts.tobytes() == b.ts.tobytes()
        and a.x.dtype == b.x.dtype
        and a.x.tobytes() == b.x.tobytes()
        and a.errors == b.errors
    )


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ab(variants: dict[str, Callable[[], Any]], reps: int, n_events: int) -> dict[str, float]:
    """Median µs per event of each variant, run interleaved (alternating order each round)."""
    names = list(variants)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(reps):
        for k in names if r % 2 == 0 else names[::-1]:
            times[k].append(timed(variants[k]))
    return {k: statistics.median(v) / n_events * 1e6 for k, v in times.items()}


def report(what: str, us: dict[str, float], base: str) -> None:
    cells = "  ".join(f"{k} {v:6.2f} µs ({1e6 / v / 1e3:7.1f} k/s, {us[base] / v:4.1f}x)" for k, v in us.items())
    print(f"{what:18s} {cells}", flush=True)


def decode_all(fn: Callable[..., codec.Decoded], source: Any, batches: list[list[SimpleNamespace]]) -> list[Any]:
    n = N_FEATURES[source if isinstance(source, str) else source.name]
    return [fn(source, b, n_features=n, now=NOW, max_future_s=300.0) for b in batches]


def decode_ab(args: argparse.Namespace, head: Any) -> None:
    print(f"decode: {args.batches} x {args.batch} records per source, bad fraction {args.bad}; ratio vs careful")
    for source in args.sources:
        batches = [records(source, args.batch, seed, args.bad) for seed in range(args.batches)]
        fns = {"careful": codec._decode_careful, **({args.rev: head.decode_batch} if head else {})}
        fns["fast"] = codec.decode_batch
        # a revision before the sources' files (stream/codec.py) takes the source's name, today's its wire format
        variants = {
            k: partial(decode_all, fn, source if k == args.rev else SOURCES[source], batches) for k, fn in fns.items()
        }
        ref = variants["careful"]()
        for k, run in variants.items():
            if not all(same(a, b) for a, b in zip(run(), ref)):
                raise SystemExit(f"{source}: {k} differs from careful")
        n_err = sum(len(d.errors) for d in ref)
        report(f"{source} ({n_err} bad)", ab(variants, args.reps, args.batch * args.batches), "careful")


def encode_per_event(kept: list[bytes], cols: dict[str, Any]) -> None:
    """One ``encode_prediction`` call per event (the pipeline before ``encode_predictions``)."""
    enc = encode.encode_prediction
    kept[:] = [
        enc(r, stream=s, source="sensors", ts=t, model="m", prediction=p, score=c, anomaly=a)
        for r, s, t, p, c, a in zip(*cols.values())
    ]


def encode_batched(kept: list[bytes], cols: dict[str, Any]) -> None:
    recs, *rest = cols.values()
    kept[:] = encode.encode_predictions(recs, source="sensors", model="m", **dict(zip(list(cols)[1:], rest)))


def encode_ab(args: argparse.Namespace) -> None:
    n = args.batch
    rng = np.random.default_rng(0)
    for f in (1, 4):
        cols = {
            "recs": [SimpleNamespace(topic="sensor-readings", partition=i % 8, offset=10**6 + i) for i in range(n)],
            "streams": [f"s-{i:07d}" for i in range(n)],
            "ts": (NOW + np.arange(n) * 1e-3).tolist(),
            "predictions": rng.standard_normal((n, f)).astype(np.float32).tolist(),
            "scores": rng.random(n).astype(np.float32).tolist(),
            "anomalies": (rng.random(n) < 0.01).tolist(),
        }
        ref: list[bytes] = []
        got: list[bytes] = []  # the pipeline keeps a batch's outputs until they are produced
        encode_per_event(ref, cols)
        encode_batched(got, cols)
        if got != ref:
            raise SystemExit("encode_predictions differs from encode_prediction")
        variants = {"per_event": partial(encode_per_event, ref, cols), "batched": partial(encode_batched, got, cols)}
        report(f"encode F={f}", ab(variants, args.reps * args.batches, n), "per_event")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sources", nargs="+", default=list(N_FEATURES), choices=list(N_FEATURES))
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--bad", type=float, default=0.0, help="fraction of records replaced by invalid ones")
    p.add_argument("--rev", default=None, help="also time this git revision's decode_batch (e.g. HEAD)")
    p.add_argument("--no-encode", action="store_true")
    args = p.parse_args()
    head = load_rev(args.rev) if args.rev else None
    decode_ab(args, head)
    if not args.no_encode:
        encode_ab(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
