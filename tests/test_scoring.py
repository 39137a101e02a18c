"""Scorer: layout, suppression, multi-scale horizons, config round trip."""

import numpy as np
import pytest
import torch

from models import ConfigError, NetConfig, RecurrentForecaster
from models.checkpoint import load_checkpoint, save_checkpoint
from models.scoring import Scorer
from models.scoring_config import ScoringConfig


def _scores(cfg: ScoringConfig, values: np.ndarray) -> np.ndarray:
    sc = Scorer(cfg, 1)
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    out = []
    prev = torch.zeros(1, 1)
    for v in values:
        x_n, err = sc.pre(aux, torch.tensor([[float(v)]]))
        out.append(float(sc.post(aux, err, x_n)[0, sc.SCORE]))  # forecast: next = current
        prev = x_n
    assert prev.shape == (1, 1)
    return np.array(out)


def _series(n: int = 800, spikes: tuple[int, ...] = (500,)) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(n) / 10) + rng.normal(0, 0.05, n)
    for s in spikes:
        x[s] += 6.0
    return x


def test_layout_grows_with_scales() -> None:
    a, b = Scorer(ScoringConfig(), 2), Scorer(ScoringConfig(err_scales=(4, 16)), 2)
    assert b.size == a.size + 2 * 4  # short, mean, var, peak per extra horizon
    assert b.init_row().shape == (b.size,)


def test_spike_scores_high_and_quiet_series_low() -> None:
    s = _scores(ScoringConfig(err_short=1), _series())
    assert s[500] > 0.9
    assert s[200:499].max() < 0.5


def test_suppression_hides_a_second_spike_inside_the_window_only() -> None:
    x = _series(1200, spikes=(500, 560, 900))
    plain = _scores(ScoringConfig(err_short=1, suppress=0), x)
    supp = _scores(ScoringConfig(err_short=1, suppress=200, suppress_level=0.5), x)
    assert plain[560] > 0.9 and supp[560] == 0.0  # within 200 events of the first
    assert supp[500] == plain[500] and supp[900] > 0.9  # the first and a later one pass


def test_scales_and_config_survive_a_checkpoint(tmp_path) -> None:
    cfg = ScoringConfig(err_short=1, err_scales=(8,), suppress=100)
    net = RecurrentForecaster(NetConfig(hidden_size=4))
    ck = load_checkpoint(save_checkpoint(tmp_path / "c.pt", net, cfg))
    assert ck.scoring == cfg and ck.scoring.scales == (1, 8)


@pytest.mark.parametrize(
    "kw", [{"err_scales": (0,)}, {"suppress": -1}, {"suppress_factor": 1.5}, {"open_threshold": 0.2}]
)
def test_bad_config_is_rejected(kw) -> None:
    with pytest.raises(ConfigError):
        ScoringConfig(**kw)
