"""Shared test helpers: seeding, small Runners, and :func:`need` for what lies outside the project."""

import importlib.util
import os
from pathlib import Path
from typing import Any

# MKL (torch's CPU matrix products) picks its code path by the operands' memory alignment on AVX-512 CPUs:
# the same rows gathered into another buffer can differ in the last bit of the GRU's forecast. Tests that
# compare two paths of our own code bit for bit (in place / gathered, waves / sequence steps) would then
# test MKL; STRICT makes its GEMMs of a given shape bitwise reproducible whatever the alignment. MKL reads
# it at its first call, and worker subprocesses inherit it; a developer's own MKL_CBWR wins (setdefault).
# Not set in the product: it cost up to ~17 % of the GRU's steps/s at batch 256-4096 here (noisy:
# bench/results/devvm-2026-12-07-session16/mkl_cbwr_strict.txt), and a stream's bits already depend on
# its batch's size
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import numpy as np
import pytest
import torch

from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig

ROOT = Path(__file__).resolve().parents[1]
# ../shared next to the checkout: the NAB dev corpus and the independent NAB scorer (not in the repository)
SHARED = ROOT.parent / "shared"
NAB_DEV = SHARED / "data" / "nab-dev"
NAB_SCORE = SHARED / "tools" / "nab_score.py"


def need(ok: bool, reason: str) -> None:
    """Skip the calling test or fixture when something outside the project is missing (a tool, the
    ../shared data), but fail it in CI (``CI`` set): there a skip would hide a test that never ran."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)


@pytest.fixture
def nab_dev() -> Path:
    """The NAB dev corpus (``../shared/data/nab-dev``: ``data/`` and ``combined_windows.json``)."""
    need(NAB_DEV.is_dir(), f"{NAB_DEV} absent")
    return NAB_DEV


@pytest.fixture
def nab_scorer(nab_dev: Path) -> Path:
    """The independent NAB scorer ``../shared/tools/nab_score.py``, with pandas, which it imports."""
    need(NAB_SCORE.is_file(), f"{NAB_SCORE} absent")
    need(importlib.util.find_spec("pandas") is not None, "nab_score.py needs pandas (the dev extra)")
    return NAB_SCORE


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


def make_runner(cell: str = "gru", features: int = 1, hidden: int = 16, layers: int = 1, **kw) -> Runner:
    torch.manual_seed(123)
    net = RecurrentForecaster(NetConfig(cell=cell, input_size=features, hidden_size=hidden, num_layers=layers))
    with torch.no_grad():
        net.head.weight.normal_(0, 0.1)  # a non-trivial forecast
    scoring = kw.pop("scoring", ScoringConfig(warmup=20))
    return Runner(net, scoring, device="cpu", **kw)


@pytest.fixture
def runner_factory():
    return make_runner


def scores_alone_and_interleaved(
    model: RecurrentForecaster, cfg: ScoringConfig, vals: dict[str, np.ndarray], ts: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each stream's scores run alone, one event per call, and the same streams interleaved in batches of
    different shapes (several events per stream per batch: waves)."""
    from models import Batch

    n = len(ts)
    alone = {}
    for sid, v in vals.items():
        r = Runner(model, cfg, device="cpu")
        alone[sid] = np.concatenate([r.process(Batch.from_rows([(sid, ts[i], [v[i]])])).score for i in range(n)])
    r = Runner(model, cfg, device="cpu")
    got: dict[str, list[float]] = {sid: [] for sid in vals}
    i = 0
    while i < n:
        k = 1 + i % 5
        rows = [(sid, ts[j], [vals[sid][j]]) for j in range(i, min(n, i + k)) for sid in vals]
        res = r.process(Batch.from_rows(rows))
        for (sid, _, _), s in zip(rows, res.score):
            got[sid].append(float(s))
        i += k
    return alone, {sid: np.array(v) for sid, v in got.items()}


def tick_wave(
    step: int, b: int, price: torch.Tensor, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Wave ``step`` of ``b`` symbols' ticks (``price``: their last prices) with every ticks rule's trigger
    somewhere in 600 steps: ``(price, x[b, 4], dt[b])``. The ticks rules tests' scenario."""
    shock = torch.randn(b, generator=g) * 0.001  # [b]
    if 300 <= step < 304:
        shock[0] -= 0.03  # a flash crash on symbol 0
    if step == 400:
        shock[1] += 0.05  # a jump on symbol 1
    frozen = price[2].item()
    price = price * torch.exp(shock)  # [b]
    if 450 < step < 480:
        price[2] = frozen  # a frozen quote on symbol 2
    size = torch.rand(b, generator=g) * 100 + (5000.0 if 500 <= step < 505 else 0.0)  # [b] a burst
    bid, ask = price - 0.01, price + 0.01  # [b]
    if step % 7 == 0:
        bid[3], ask[3] = float("nan"), float("nan")  # no quote
    if step == 520:
        bid[4], ask[4] = price[4] + 0.02, price[4] - 0.02  # crossed
    dt = torch.rand(b, generator=g) + 0.1  # [b]
    if step == 550:
        dt[5] = 500.0  # a gap
    return price, torch.stack((price, size, bid, ask), 1), dt  # [b], [b, 4], [b]


def tick_states(f: Any, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two equal copies of ``b`` fresh symbols' own ticks state (``f``: a ``TickFeatures``), and their
    first prices: the start of :func:`tick_wave`'s scenario."""
    from models.ticks import _OWN

    s = f.init_row().unsqueeze(0).repeat(b, 1)[:, f._o : f._o + _OWN].clone()  # [b, S]
    return s, s.clone(), torch.full((b,), 100.0)  # [b, S], [b, S], [b]


def tick_batches(seed: int, symbols: int, batches: int, max_n: int, jump_p: float, late_p: float = 0.0) -> list[Any]:
    """Micro-batches of trades and quotes of a few symbols: several ticks of a symbol per batch, random walks
    with jumps of 5 % (rule alerts), 70 % quoted; ``late_p``: ticks older than their batch (out of order)."""
    from models.types import Batch

    rng = np.random.default_rng(seed)
    out, t, price = [], 1_700_000_000.0, np.full(symbols, 100.0)
    for k in range(batches):
        n = int(rng.integers(1, max_n))
        sym = rng.integers(0, symbols, n)
        price[sym] *= np.exp(rng.normal(0, 0.002, n) + (rng.random(n) < jump_p) * rng.choice([-0.05, 0.05], n))
        p = price[sym].astype(np.float32)
        size = rng.integers(1, 500, n).astype(np.float32)
        quoted = rng.random(n) < 0.7
        bid = np.where(quoted, p * 0.999, np.nan).astype(np.float32)
        ask = np.where(quoted, p * 1.001, np.nan).astype(np.float32)
        ts = np.sort(t + k * 5.0 + rng.uniform(0, 5.0, n))
        if late_p:
            ts[rng.random(n) < late_p] -= 1_000.0
        out.append(Batch([f"S{int(i)}" for i in sym], ts, np.stack([p, size, bid, ask], 1)))
    return out


def raw_batches(
    f: int, seed: int, masked: bool = False, streams: int = 40, batches: int = 60, max_n: int = 120
) -> list[Any]:
    """Micro-batches of ``f`` values over ``streams`` streams, several events of a stream per batch, with
    bursts (alerts open, later resolve), NaNs (masked: missing values; else rejected rows) and late events."""
    from models.types import Batch

    rng = np.random.default_rng(seed)
    t = 1_700_000_000.0
    out = []
    for k in range(batches):
        n = int(rng.integers(1, max_n))
        ids = [f"s{int(i)}" for i in rng.integers(0, streams, n)]
        ts = np.sort(t + k * 300.0 + rng.uniform(0, 300.0, n))
        x = rng.standard_normal((n, f)).astype(np.float32)
        x[rng.random(n) < 0.03] *= 40.0  # bursts: alerts open (and later resolve)
        if masked:
            x[rng.random((n, f)) < 0.1] = np.nan  # missing values (a row with none observed is rejected)
        else:
            x[rng.random(n) < 0.02, 0] = np.nan  # non-finite: rejected
        late = rng.random(n) < 0.02
        ts[late] -= 10_000.0  # older than the stream's last event: rejected (out of order)
        out.append(Batch(ids, ts, x))
    return out


def same_runs(a: Runner, b: Runner, batches: list[Any]) -> int:
    """Both runners process ``batches``: every result (rows accepted and why, outputs, alerts with all their
    fields, forecasts) and the whole slab (aux and hidden state) must be bitwise equal. Returns the alerts
    opened."""
    opened = 0
    for batch in batches:
        r1, r2 = a.process(batch), b.process(batch)
        assert r1.accepted.tolist() == r2.accepted.tolist() and r1.reason == r2.reason
        for u, v in ((r1.prediction, r2.prediction), (r1.expected, r2.expected), (r1.score, r2.score)):
            np.testing.assert_array_equal(u, v)
        assert r1.anomaly.tolist() == r2.anomaly.tolist() and r1.transition.tolist() == r2.transition.tolist()
        # every field of every alert (a ticks alert's kind and evidence too); repr: a missing value is NaN
        assert repr(r1.alerts) == repr(r2.alerts)
        if r1.forecast is not None or r2.forecast is not None:
            np.testing.assert_array_equal(r1.forecast, r2.forecast)
        opened += int((r1.transition > 0).sum())
    n = len(a.slab)
    assert n == len(b.slab)
    np.testing.assert_array_equal(a.slab.aux[:n].numpy(), b.slab.aux[:n].numpy())  # (NaN == NaN here)
    np.testing.assert_array_equal(a.slab.hidden[:n].numpy(), b.slab.hidden[:n].numpy())
    return opened
