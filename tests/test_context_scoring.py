"""Context channels of the scorer (season, profile, shift): phases, layout, behaviour, batching."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from models import Batch, ConfigError, NetConfig, RecurrentForecaster, Runner
from models.features import make_features
from models.scoring import CONTEXT_SCORING, Scorer, ScoringConfig

HOUR = 3600.0


def _scores(cfg: ScoringConfig, values: np.ndarray, ts: np.ndarray, forecast_zero: bool = False) -> np.ndarray:
    """One stream, forecast = current value (or 0): the residual is the step change (or the value)."""
    sc = Scorer(cfg, 1)
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    ph = torch.from_numpy(sc.phases(ts))  # [T, P]
    out = []
    for t, v in enumerate(values):
        x_n, err = sc.pre(aux, torch.tensor([[float(v)]]), ph[t : t + 1] if sc.n_phases else None)
        fc = torch.zeros_like(x_n) if forecast_zero else x_n
        out.append(float(sc.post(aux, err, fc)[0, sc.SCORE]))
    return np.array(out)


def test_phases_are_buckets_of_the_period() -> None:
    sc = Scorer(ScoringConfig(season_buckets=96, profile_buckets=168), 1)
    ts = np.array([0.0, 899.0, 900.0, 86399.0, 86400.0 + 3 * HOUR, 6 * 86400.0 + 23.5 * HOUR])
    ph = sc.phases(ts)
    assert ph.dtype == np.float32 and ph.shape == (6, 2)
    assert ph[:, 0].tolist() == [0, 0, 1, 95, 12, 94]  # 15-minute bucket of the day
    assert ph[:, 1].tolist() == [0, 0, 0, 23, 27, 167]  # hour of the week
    assert Scorer(ScoringConfig(), 1).phases(ts).shape == (6, 0)
    # epoch seconds: float64 arithmetic on the host, exact at today's magnitudes
    assert sc.phases(np.array([1.7e9 + 900.0]))[0, 0] == ((1.7e9 + 900.0) % 86400) // 900


def test_defaults_keep_the_plain_layout_and_context_adds_its_columns() -> None:
    plain, ctx = Scorer(ScoringConfig(), 1), Scorer(CONTEXT_SCORING, 1)
    assert plain.n_phases == 0 and ctx.n_phases == 2
    assert ctx.size == plain.size + 2 * 96 + 2 * 168 + 2 + 6
    assert ctx.init_row().shape == (ctx.size,)


@pytest.mark.parametrize(
    "kw",
    [{"season_buckets": -1}, {"profile_rate": 0.0}, {"season_period": 0.0}, {"shift_long": 0}, {"profile_window": 0}],
)
def test_bad_context_config_is_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ScoringConfig(**kw)  # type: ignore[arg-type]


def test_masked_and_ticks_features_refuse_context_channels() -> None:
    with pytest.raises(ConfigError, match="masked"):
        Scorer(ScoringConfig(shift_short=8), 2, masked=True)
    cfg = NetConfig(input_size=7, output_size=2, inputs="ticks")
    make_features(cfg, ScoringConfig())  # the plain config is fine
    with pytest.raises(ConfigError, match="no season/profile/shift"):
        make_features(cfg, ScoringConfig(profile_buckets=24))


def test_season_channel_learns_a_daily_transition() -> None:
    """A square wave that jumps at the same time every day: the one-step residual spikes at each
    jump, the season channel subtracts the residual usual at that time of day."""
    ts = np.arange(0, 12 * 86400, 900.0)  # 12 days of 15-minute events
    x = np.where((ts % 86400) < 8 * HOUR, 1.0, 0.0) + np.random.default_rng(0).normal(0, 0.01, len(ts))
    jumps = np.flatnonzero(np.abs(np.diff(x)) > 0.5) + 1
    late = jumps[ts[jumps] > 8 * 86400]  # jumps after eight days
    plain = _scores(replace(ScoringConfig(), suppress=0), x, ts)
    season = _scores(replace(ScoringConfig(), suppress=0, season_buckets=96), x, ts)
    assert plain[late].min() > 0.3
    assert season[late].max() < 0.5 * plain[late].min()


def test_profile_channel_flags_a_broken_weekly_pattern() -> None:
    """A value that follows the hour of the week exactly, then one day runs the wrong pattern:
    the step residual (forecast = 0 here, so the residual is the value) sees nothing new, the
    profile does."""
    ts = np.arange(0, 5 * 7 * 86400, HOUR)  # five weeks, hourly
    x = np.sin(2 * np.pi * (ts % 86400) / 86400)
    broken = (ts >= 4 * 7 * 86400 + 2 * 86400) & (ts < 4 * 7 * 86400 + 3 * 86400)
    x = np.where(broken, -x, x)
    cfg = replace(ScoringConfig(), suppress=0, profile_buckets=168, profile_weight=1.0)
    both = _scores(cfg, x, ts, forecast_zero=True)
    plain = _scores(replace(cfg, profile_buckets=0), x, ts, forecast_zero=True)
    before = (ts > 3 * 7 * 86400) & ~broken & (ts < 4 * 7 * 86400)
    assert both[broken].max() > 0.9 and plain[broken].max() < 0.5
    assert both[before].max() < 0.5


def test_shift_channel_flags_a_level_shift() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1.0, 3000)
    x[2000:] += 1.5  # a level shift smaller than the noise of one step
    ts = np.arange(3000) * 300.0
    cfg = replace(ScoringConfig(), suppress=0, shift_short=16, shift_long=200, shift_weight=1.0)
    with_shift = _scores(cfg, x, ts, forecast_zero=True)
    assert with_shift[2000:2100].max() > 0.8
    assert with_shift[1000:2000].max() < with_shift[2000:2100].max()


def test_runner_with_context_is_independent_of_batching() -> None:
    """Two streams, interleaved in batches of different shapes, give the scores of each stream
    run alone: the channels' state is per stream in the slab, the phases travel with the values."""
    torch.manual_seed(0)
    model = RecurrentForecaster(NetConfig(hidden_size=8))
    cfg = replace(CONTEXT_SCORING, warmup=0)
    n = 400
    ts = 1.7e9 + np.arange(n) * 600.0
    rng = np.random.default_rng(2)
    vals = {"a": np.sin(np.arange(n) / 7) + rng.normal(0, 0.1, n), "b": rng.normal(5, 2, n)}
    alone = {}
    for sid, v in vals.items():
        r = Runner(model, cfg, device="cpu")
        alone[sid] = np.concatenate([r.process(Batch.from_rows([(sid, ts[i], [v[i]])])).score for i in range(n)])
    r = Runner(model, cfg, device="cpu")
    got: dict[str, list[float]] = {"a": [], "b": []}
    i = 0
    while i < n:
        k = 1 + i % 5  # batches with several events per stream (waves)
        rows = [(sid, ts[j], [vals[sid][j]]) for j in range(i, min(n, i + k)) for sid in ("a", "b")]
        res = r.process(Batch.from_rows(rows))
        for (sid, _, _), s in zip(rows, res.score):
            got[sid].append(float(s))
        i += k
    for sid in vals:
        np.testing.assert_allclose(np.array(got[sid]), alone[sid], atol=1e-5)
    assert max(alone["a"].max(), alone["b"].max()) > 0.0


def test_bundled_sensor_checkpoint_uses_context_scoring() -> None:
    from models.checkpoint import load_checkpoint

    assert load_checkpoint().scoring == CONTEXT_SCORING


def test_phase_columns_are_required_when_the_channels_need_them() -> None:
    sc = Scorer(CONTEXT_SCORING, 1)
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    with pytest.raises(ConfigError, match="phase"):
        sc.pre(aux, torch.tensor([[1.0]]))
    with pytest.raises(ConfigError, match="phase"):
        sc.pre(aux, torch.tensor([[1.0]]), torch.zeros(1, 1))
    Scorer(ScoringConfig(shift_short=8), 1).pre(
        aux[:, : Scorer(ScoringConfig(shift_short=8), 1).size].clone(), torch.tensor([[1.0]])
    )
