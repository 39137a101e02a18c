"""A wave's aux rows updated where they are in the slab (``Runner.aux_in_place``, the CPU default) give
exactly what gathering them, scoring the copy and scattering it back gives.

The compiled scorer loops do the same arithmetic on the same floats either way, so outputs and the
whole slab (hidden state and aux) must be bitwise equal, over batches with several waves (a stream
more than once), rejected rows (non-finite, out of order), new streams that grow the slab, and
alerts that open and resolve; the ticks rules included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig
from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from models.types import Batch

_DIR = DEFAULT_CHECKPOINT.parent
CHECKPOINTS = {  # bundled checkpoints: the calibrated sensor detector, a plain raw and a masked scorer
    "sensor": str(_DIR / "sensor_gru.pt"),
    "speech": str(_DIR / "speech_gru.pt"),
    "machine": str(_DIR / "machine_gru.pt"),
}


def _pair(make: object) -> tuple[Runner, Runner]:
    on, off = make(), make()  # type: ignore[operator]
    off.aux_in_place = False
    return on, off


def _bundled(name: str) -> tuple[Runner, Runner]:
    def make() -> Runner:
        ck = load_checkpoint(CHECKPOINTS[name])
        return Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id=name)

    return _pair(make)


def _batches(f: int, seed: int, masked: bool) -> list[Batch]:
    """Batches over 40 streams, ~3 events per stream per batch, with bursts, NaNs and late events."""
    rng = np.random.default_rng(seed)
    t = 1_700_000_000.0
    out = []
    for k in range(60):
        n = int(rng.integers(1, 120))
        ids = [f"s{int(i)}" for i in rng.integers(0, 40, n)]
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


def _same(on: Runner, off: Runner, batches: list[Batch]) -> int:
    opened = 0
    for b in batches:
        r1, r2 = on.process(b), off.process(b)
        assert r1.accepted.tolist() == r2.accepted.tolist()
        for a, c in ((r1.prediction, r2.prediction), (r1.expected, r2.expected), (r1.score, r2.score)):
            np.testing.assert_array_equal(a, c)
        assert r1.anomaly.tolist() == r2.anomaly.tolist() and r1.transition.tolist() == r2.transition.tolist()
        opened += int((r1.transition > 0).sum())
    n = len(on.slab)
    assert n == len(off.slab)
    np.testing.assert_array_equal(on.slab.aux[:n].numpy(), off.slab.aux[:n].numpy())  # (NaN == NaN here)
    np.testing.assert_array_equal(on.slab.hidden[:n].numpy(), off.slab.hidden[:n].numpy())
    return opened


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_bundled_detectors_in_place_equal_gathered(name: str) -> None:
    on, off = _bundled(name)
    assert on.features.in_place and on.aux_in_place
    f = on.n_features
    _same(on, off, _batches(f, 1, masked=on.features.kind == "masked"))


def test_plain_scorer_in_place_opens_the_same_alerts() -> None:
    def make() -> Runner:
        torch.manual_seed(0)
        net = RecurrentForecaster(NetConfig(input_size=2, hidden_size=8))
        return Runner(net, ScoringConfig(warmup=5, close_after=2), device="cpu", capacity=2)

    on, off = _pair(make)
    assert _same(on, off, _batches(2, 2, masked=False)) > 0  # the runs open alerts


def test_ticks_in_place_equal_gathered() -> None:
    """The ticks rules' loops take the slab's rows too: quotes, trades, gaps and bursts give the same bits."""
    ck = load_checkpoint(str(_DIR / "ticks_gru.pt"))

    def make() -> Runner:
        return Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id="ticks")

    on, off = _pair(make)
    assert on.features.in_place
    rng = np.random.default_rng(3)
    batches, t, price = [], 1_700_000_000.0, np.full(12, 100.0)
    for k in range(80):
        n = int(rng.integers(1, 40))
        sym = rng.integers(0, 12, n)
        price[sym] *= np.exp(rng.normal(0, 0.002, n) + (rng.random(n) < 0.02) * rng.choice([-0.05, 0.05], n))
        p = price[sym].astype(np.float32)
        size = rng.integers(1, 500, n).astype(np.float32)
        quoted = rng.random(n) < 0.7
        bid = np.where(quoted, p * 0.999, np.nan).astype(np.float32)
        ask = np.where(quoted, p * 1.001, np.nan).astype(np.float32)
        ts = np.sort(t + k * 5.0 + rng.uniform(0, 5.0, n))
        batches.append(Batch([f"S{int(i)}" for i in sym], ts, np.stack([p, size, bid, ask], 1)))
    opened = 0
    for b in batches:
        r1, r2 = on.process(b), off.process(b)
        assert r1.accepted.tolist() == r2.accepted.tolist()
        np.testing.assert_array_equal(r1.prediction, r2.prediction)
        np.testing.assert_array_equal(r1.score, r2.score)
        assert r1.alerts == r2.alerts  # (dataclasses: every field, the kind and evidence included)
        opened += sum(a.state == "open" for a in r1.alerts)
    assert opened > 0  # the runs open rule alerts
    n = len(on.slab)
    np.testing.assert_array_equal(on.slab.aux[:n].numpy(), off.slab.aux[:n].numpy())  # (NaN == NaN here)
    np.testing.assert_array_equal(on.slab.hidden[:n].numpy(), off.slab.hidden[:n].numpy())


def test_a_torch_path_refuses_the_slabs_rows() -> None:
    """Given rows= of the slab, the torch code (the loops switched off) raises: it would update every stream."""
    from models.errors import ConfigError
    from models.scoring import Scorer

    sc = Scorer(ScoringConfig(), 1)
    sc.kernel = False  # the switch the loops' own tests turn off
    assert not sc.in_place
    aux = sc.init_row().expand(4, -1).clone()  # [4, A]
    with pytest.raises(ConfigError, match="rows= of the slab"):
        sc.pre(aux, torch.zeros(2, 1), rows=torch.tensor([0, 2]))
    ck = load_checkpoint(str(_DIR / "ticks_gru.pt"))
    r = Runner(ck.model, ck.scoring, device="cpu")
    r.features._kernel = None  # type: ignore[attr-defined]  # the torch rules
    assert not r.features.in_place
    with pytest.raises(ConfigError, match="rows= of the slab"):
        r.features.featurise(r.slab.aux, torch.tensor([[100.0, 1.0, 99.0, 101.0]]), None, rows=torch.tensor([0]))
    assert r.process(Batch(["a"], np.array([1.0]), np.array([[100, 1, 99, 101]], np.float32))).accepted.all()
