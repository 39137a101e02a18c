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

from .conftest import raw_batches, same_runs, tick_batches

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


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_bundled_detectors_in_place_equal_gathered(name: str) -> None:
    on, off = _bundled(name)
    assert on.features.in_place and on.aux_in_place
    f = on.n_features
    same_runs(on, off, raw_batches(f, 1, masked=on.features.kind == "masked"))


def test_plain_scorer_in_place_opens_the_same_alerts() -> None:
    def make() -> Runner:
        torch.manual_seed(0)
        net = RecurrentForecaster(NetConfig(input_size=2, hidden_size=8))
        return Runner(net, ScoringConfig(warmup=5, close_after=2), device="cpu", capacity=2)

    on, off = _pair(make)
    assert same_runs(on, off, raw_batches(2, 2)) > 0  # the runs open alerts


def test_ticks_in_place_equal_gathered() -> None:
    """The ticks rules' loops take the slab's rows too: quotes, trades, gaps and bursts give the same bits."""
    ck = load_checkpoint(str(_DIR / "ticks_gru.pt"))

    def make() -> Runner:
        return Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id="ticks")

    on, off = _pair(make)
    assert on.features.in_place
    batches = tick_batches(3, symbols=12, batches=80, max_n=40, jump_p=0.02)
    assert same_runs(on, off, batches) > 0  # the runs open rule alerts


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
