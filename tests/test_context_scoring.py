"""Context channels of the scorer (season, profile, shift): phases, layout, behaviour, batching."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from models import ConfigError, NetConfig, RecurrentForecaster
from models.runner import make_features
from models.scoring import Scorer
from models.scoring_config import CONTEXT_SCORING, ScoringConfig

from .conftest import scores_alone_and_interleaved

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
    # season, profile, profile gate (EMA, two mean squares, count), shift, calibration, per-channel counters
    assert ctx.size == plain.size + 2 * 96 + 2 * 168 + 4 + 2 + 6 + 3
    assert ctx.init_row().shape == (ctx.size,)


@pytest.mark.parametrize(
    "kw",
    [
        {"season_buckets": -1},
        {"profile_rate": 0.0},
        {"season_period": 0.0},
        {"shift_long": 0},
        {"profile_window": 0},
        {"profile_gate_slow": -1},
        {"profile_gate_window": 0},
        {"profile_gate_low": 1.2, "profile_gate_high": 1.2},
        {"suppress_other": 201},
        {"suppress_other": 50, "suppress_factor": 0.5},
    ],
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


@pytest.mark.parametrize("step", [600.0, HOUR])  # hourly: 400 events revisit the hour-of-week buckets (gate)
def test_runner_with_context_is_independent_of_batching(step: float) -> None:
    """Two streams, interleaved in batches of different shapes, give the scores of each stream
    run alone: the channels' state is per stream in the slab, the phases travel with the values."""
    torch.manual_seed(0)
    model = RecurrentForecaster(NetConfig(hidden_size=8))
    cfg = replace(CONTEXT_SCORING, warmup=0)
    n = 400
    ts = 1.7e9 + np.arange(n) * step
    rng = np.random.default_rng(2)
    vals = {"a": np.sin(np.arange(n) / 7) + rng.normal(0, 0.1, n), "b": rng.normal(5, 2, n)}
    alone, got = scores_alone_and_interleaved(model, cfg, vals, ts)
    for sid in vals:
        np.testing.assert_allclose(got[sid], alone[sid], atol=1e-5)
    assert max(alone["a"].max(), alone["b"].max()) > 0.0


def test_bundled_sensor_checkpoint_uses_calibrated_scoring() -> None:
    """The bundled sensor detector scores with the calibrated channels (issue 18), no longer with
    ``CONTEXT_SCORING`` (kept for comparison and tested above)."""
    from models.checkpoint import load_checkpoint
    from models.scoring_config import CALIBRATED_SCORING

    assert load_checkpoint().scoring == CALIBRATED_SCORING


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


# --- profile gate and per-channel suppression -------------------------------------------------


def _gate_reference(x: np.ndarray, ts: np.ndarray, cfg: ScoringConfig) -> np.ndarray:
    """The offline harness's profile channel with its gate (float64, one stream): the weighted,
    gated profile score of every event, as ``Scorer`` stores it for :meth:`Scorer.post`."""
    nb, period = cfg.profile_buckets, cfg.profile_period
    m, cnt = np.zeros(nb), np.zeros(nb)
    mu = var = 0.0
    vp = vs = 0.0
    ema, k = x[0], 0
    em, ev = 0.0, cfg.err_var_prior  # calibration
    out = np.zeros(len(x))
    for t in range(len(x)):
        b = int((ts[t] % period) / (period / nb))
        a = max(1.0 / (t + 1), 1.0 / cfg.norm_window)
        sd = max(math.sqrt(max(var, 0.0)), cfg.min_std)
        r = abs(x[t] - m[b]) / sd if cnt[b] > 0 and t > 1 else 0.0
        q = vp / max(vs, 1e-12) if k > 0 else 1.0
        gate = min(max((cfg.profile_gate_high - q) / (cfg.profile_gate_high - cfg.profile_gate_low), 0.0), 1.0)
        if cnt[b] > 0:
            k += 1
            av = max(1.0 / k, 1.0 / cfg.profile_gate_window)
            vp += av * ((x[t] - m[b]) ** 2 - vp)
            vs += av * ((x[t] - ema) ** 2 - vs)
        ema += max(1.0 / (t + 1), 1.0 / cfg.profile_gate_slow) * (x[t] - ema)
        d = x[t] - mu
        var = (var + a * d * d) * (1 - a)
        mu += a * d
        m[b] += max(1.0 / (cnt[b] + 1), cfg.profile_rate) * (x[t] - m[b])
        cnt[b] += 1
        # tail calibration of r against its own running mean/variance
        dr = r - em
        z = dr / math.sqrt(max(ev, 1e-8))
        tail = 0.5 * math.erfc(z / math.sqrt(2.0))
        sc = min(max(math.log(tail + 1e-10) / math.log(1e-10), 0.0), 1.0) if t >= 2 else 0.0
        ac = 0.0 if t < 1 else max(1.0 / (t + 1), 1.0 / cfg.profile_window)
        ev = (ev + ac * dr * dr) * (1 - ac)
        em += ac * dr
        out[t] = cfg.profile_weight * sc * gate
    return out


def _profile_scores(cfg: ScoringConfig, x: np.ndarray, ts: np.ndarray) -> np.ndarray:
    sc = Scorer(cfg, 1)
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    ph = torch.from_numpy(sc.phases(ts))  # [T, P]
    got = []
    for t, v in enumerate(x):
        x_n, err = sc.pre(aux, torch.tensor([[float(v)]]), ph[t : t + 1])
        got.append(float(aux[0, sc._cscore][0]))
        sc.post(aux, err, x_n)
    return np.array(got)


def test_profile_gate_matches_the_offline_reference() -> None:
    """A weekly pattern that holds for two weeks, then noise: the gate, the profile's calibration and
    weight reproduce the float64 reference of the offline harness the parameters were chosen with."""
    ts = np.arange(0, 4 * 7 * 86400, HOUR)
    rng = np.random.default_rng(3)
    x = np.sin(2 * np.pi * ts / 86400) + 0.1 * rng.normal(size=len(ts))
    x[len(x) // 2 :] = np.cumsum(rng.normal(0, 0.3, len(x) - len(x) // 2))  # no weekly pattern any more
    cfg = replace(ScoringConfig(), profile_buckets=168, profile_gate_slow=200, profile_gate_window=100)
    np.testing.assert_allclose(_profile_scores(cfg, x, ts), _gate_reference(x, ts, cfg), atol=2e-4)


def test_profile_gate_silences_a_profile_that_explains_nothing() -> None:
    """Noise without a weekly pattern: the hour-of-week means (a few events each) predict it worse
    than a slow level, so the gated profile channel stays quiet where the ungated one alarms at the
    noise's tails; a series that follows its weekly pattern keeps the profile channel (its broken
    day is still flagged)."""
    ts = np.arange(0, 4 * 7 * 86400, 900.0)  # four weeks of 15-minute events
    rng = np.random.default_rng(4)
    noise = rng.standard_t(3, len(ts))
    cfg = replace(ScoringConfig(), profile_buckets=168, profile_weight=1.0)
    gated = replace(cfg, profile_gate_slow=2000)
    late = ts > 8 * 86400
    ungated_max = _profile_scores(cfg, noise, ts)[late].max()
    assert ungated_max > 0.5
    assert _profile_scores(gated, noise, ts)[late].max() < 0.2 * ungated_max
    x = np.sin(2 * np.pi * (ts % 86400) / 86400) + 0.05 * rng.normal(size=len(ts))
    broken = (ts >= 3 * 7 * 86400 + 2 * 86400) & (ts < 3 * 7 * 86400 + 3 * 86400)
    x = np.where(broken, -x, x)
    assert _profile_scores(gated, x, ts)[broken].max() > 0.9


def _suppress_reference(ch: np.ndarray, n: int, n_other: int, level: float) -> np.ndarray:
    """The harness's per-channel suppression: ``ch[T, C]`` channel scores -> emitted scores."""
    since, glob = np.full(ch.shape[1], n), n
    out = np.zeros(len(ch))
    for t, v in enumerate(ch):
        o, oc = 0.0, -1
        for c in range(len(v)):
            if not (since[c] < n or glob < n_other) and v[c] > o:
                o, oc = v[c], c
        since = np.minimum(since + 1, n)
        glob = min(glob + 1, n)
        if o >= level:
            since[oc], glob = 0, 0
        out[t] = o
    return out


def _post_scores(cfg: ScoringConfig, ch: np.ndarray) -> np.ndarray:
    """Profile and shift scores ``ch[T, 1:]`` written straight into the scorer's state, residual 0."""
    sc = Scorer(cfg, 1)
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    aux[0, sc.STEPS] = 2.0  # past the two-residual warm-up of the residual channel
    got = []
    for t in range(len(ch)):
        aux[0, sc._cscore] = torch.tensor(ch[t, 1:], dtype=torch.float32)
        got.append(float(sc.post(aux, torch.zeros(1), torch.zeros(1, 1))[0, sc.SCORE]))
    return np.array(got)


def test_per_channel_suppression_lets_another_channel_alert() -> None:
    """After an alert the same channel is quiet for ``suppress`` events and the others for
    ``suppress_other``; matches the harness's reference; ``suppress_other = suppress`` is the
    shared counter of ``suppress_other = 0``."""
    cfg = replace(ScoringConfig(), profile_buckets=4, shift_short=4, suppress=50, suppress_other=10, warmup=0)
    rng = np.random.default_rng(5)
    n = 400
    ch = np.zeros((n, 3))  # [T, C] residual, profile, shift
    ch[:, 0] = math.log(0.5 + 1e-10) / math.log(1e-10)  # err 0 = its running mean: tail 0.5
    for c in (1, 2):
        hits = rng.choice(np.arange(5, n), 25, replace=False)
        ch[hits, c] = rng.uniform(0.3, 1.0, len(hits))
    ch[40:131, 1:] = 0.0  # nothing suppressed at 100
    ch[100, 1], ch[105, 2], ch[115, 2], ch[130, 1] = 0.9, 0.8, 0.85, 0.95  # other channel after 5 / 15 events
    ch = ch.astype(np.float32).astype(np.float64)
    got = _post_scores(cfg, ch)
    np.testing.assert_allclose(got, _suppress_reference(ch, 50, 10, 0.5), atol=1e-6)
    assert got[100] > 0.5 and got[105] == 0.0 and got[115] > 0.5 and got[130] < 0.1  # 130: the profile still quiet
    shared = _post_scores(replace(cfg, suppress_other=0), ch)
    np.testing.assert_allclose(_post_scores(replace(cfg, suppress_other=50), ch), shared, atol=1e-6)
    assert not np.allclose(got, shared)


def test_scorer_with_gate_and_channel_suppression_is_independent_of_batch_size() -> None:
    """B streams scored together give each stream's scores scored alone (CPU), with the profile
    gate measuring and the per-channel counters in use."""
    cfg = replace(CONTEXT_SCORING, warmup=0)
    n, b = 24 * 7 * 3, 5
    ts = 1.7e9 + np.arange(n) * HOUR
    rng = np.random.default_rng(6)
    x = np.stack([np.sin(2 * np.pi * ts / 86400) * (i + 1) + rng.normal(0, 0.2 + 0.3 * i, n) for i in range(b)], 1)
    x[300:, 1] += np.cumsum(rng.normal(0, 1.0, n - 300))  # one stream loses its pattern
    x[400, 2] += 8.0
    sc = Scorer(cfg, 1)
    ph = torch.from_numpy(sc.phases(ts))  # [T, P]

    def run(cols: list[int]) -> np.ndarray:
        aux = sc.init_row().expand(len(cols), -1).clone()  # [B, A]
        out = np.zeros((n, len(cols)))
        for t in range(n):
            xt = torch.tensor(x[t, cols], dtype=torch.float32).unsqueeze(1)  # [B, 1]
            x_n, err = sc.pre(aux, xt, ph[t : t + 1].expand(len(cols), -1))
            out[t] = sc.post(aux, err, x_n * 0.5)[:, sc.SCORE].numpy()
        return out

    together = run(list(range(b)))
    for i in range(b):
        np.testing.assert_allclose(together[:, i], run([i])[:, 0], atol=1e-5)
    assert (together >= 0.5).sum() > 0
