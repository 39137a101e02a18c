"""``RingStore.record`` (the explorer's per-batch feed) of the working tree vs a git revision, in one process.

Both stores get the same batches, interleaved batch by batch (the order alternates by round), only
``record`` is timed, and after every scenario the two stores' states are compared (they must be
identical: same rows, points, counters, LRU reuse, tombstones). Default store: 256 points, 4096
rows, F = 1 (the worker's defaults for sensors):

    .venv/bin/python bench/explorer_ab.py --rev HEAD --rounds 4

Scenarios: ``resident`` (4096 streams, each at most once per batch), ``repeats`` (ids drawn at
random from 4096: streams repeat within a batch), ``churn`` (10k streams round robin through the
4096 rows: every event takes a reused row, as in ``bench/pipeline_bench.py`` and the end-to-end
bench), ``churn_random`` (10k streams drawn at random), ``rejected`` (resident, 5 % rejected
events), ``slab_lru`` (10k streams through a real ``StateSlab`` of 6000 slots that evicts by LRU
every batch, so ``sync`` runs on every batch).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.state import StateSlab  # noqa: E402
from stream import explorer  # noqa: E402

SCENARIOS = ("resident", "repeats", "churn", "churn_random", "rejected", "slab_lru")


def rev_path(rev: str, paths: tuple[str, ...] = ("stream/explorer/store.py", "stream/explorer.py")) -> str:
    """The first of ``paths`` at ``rev`` (``RingStore`` was in ``stream/explorer.py`` before the package)."""
    for path in paths:
        if subprocess.run(["git", "cat-file", "-e", f"{rev}:{path}"], cwd=ROOT, capture_output=True).returncode == 0:
            return path
    raise SystemExit(f"{rev} has none of {', '.join(paths)}")


def load_rev(rev: str) -> Any:
    """The module holding ``RingStore`` at ``rev`` (see :func:`rev_path`), loaded as a module."""
    path = rev_path(rev)
    src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True)
    mod = types.ModuleType(f"stream._ab_explorer_{rev}")
    mod.__package__ = "stream"
    mod.__file__ = str(ROOT / path)
    sys.modules[mod.__name__] = mod
    exec(compile(src.stdout.decode(), f"{rev}:{path}", "exec"), mod.__dict__)
    return mod


def state(store: Any) -> tuple[Any, ...]:
    """What must be identical between the two implementations (wall-clock times left out)."""
    arrays = ("ts", "x", "exp", "score", "flags", "pred", "count", "rejected", "open", "last_used", "part", "used")
    tombs = [(k, {a: b for a, b in v.items() if a != "evicted_at"}) for k, v in store.tombstones.items()]
    return (
        [getattr(store, a).tobytes() for a in arrays],
        list(store._ids),
        [None if q is None else list(q) for q in store._alerts],
        list(store._row_of.items()),
        list(store._free),
        tombs,
        store.dropped,
        store._tick,
    )


def batches(rng: np.random.Generator, scenario: str, n: int, count: int, k0: int) -> list[tuple[Any, ...]]:
    streams = 4096 if scenario in ("resident", "repeats", "rejected") else 10_000
    out = []
    for j in range(count):
        if scenario in ("repeats", "churn_random"):
            ids = [f"s-{i:07d}" for i in rng.integers(0, streams, n).tolist()]
        else:
            ids = [f"s-{(k0 + j * n + i) % streams:07d}" for i in range(n)]
        acc = rng.random(n) > 0.05 if scenario == "rejected" else np.ones(n, bool)
        res = SimpleNamespace(
            accepted=acc,
            prediction=rng.standard_normal((n, 1)).astype(np.float32),
            expected=rng.standard_normal((n, 1)).astype(np.float32),
            score=rng.random(n).astype(np.float32),
            anomaly=rng.random(n) < 0.01,
            transition=np.zeros(n, np.int8),
            alerts=[],
            reason=[None] * n,
        )
        ts = np.full(n, 1000.0 + k0 + j)
        out.append((ids, ts, rng.standard_normal((n, 1)).astype(np.float32), res))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", default="HEAD", help="A/B against this git revision's RingStore")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--sizes", type=int, nargs="+", default=[80, 500, 4096])
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    p.add_argument("--batches", type=int, default=40, help="timed batches per scenario, size and round")
    args = p.parse_args()
    old_mod = load_rev(args.rev)
    rng = np.random.default_rng(0)
    print(f"| scenario | batch | {args.rev} ns/event | new ns/event | {args.rev} / new |")
    print("|---|---:|---:|---:|---:|")
    for scenario in args.scenarios:
        for n in args.sizes:
            stores = {
                args.rev: old_mod.RingStore("sensors", n_features=1, points=256, max_streams=4096),
                "new": explorer.RingStore("sensors", n_features=1, points=256, max_streams=4096),
            }
            slab = None
            if scenario == "slab_lru":
                slab = StateSlab(layers=1, parts=1, hidden=1, aux_init=torch.zeros(1), capacity=6000)
            k = 0
            warm = batches(rng, scenario, n, max(1, 12_000 // n), k)  # fill (and churn) the rows first
            k += len(warm) * n
            spent = dict.fromkeys(stores, 0.0)
            events = 0
            for r in range(args.rounds + 1):
                todo = warm if r == 0 else batches(rng, scenario, n, args.batches, k)
                k += len(todo) * n
                names = list(stores) if r % 2 == 0 else list(stores)[::-1]
                for ids, ts, x, res in todo:
                    if slab is not None:
                        slab.assign(ids)
                    for name in names:
                        extra = (slab, None) if slab is not None else ()
                        t0 = time.perf_counter()
                        stores[name].record(ids, ts, x, res, *extra)
                        if r:
                            spent[name] += time.perf_counter() - t0
                    if r:
                        events += len(ids)
            same = state(stores[args.rev]) == state(stores["new"])
            a, b = spent[args.rev] / events * 1e9, spent["new"] / events * 1e9
            print(
                f"| {scenario} | {n} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x{'' if same else ' STATE DIFFERS'} |",
                flush=True,
            )
            if not same:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
