"""Calibrated scoring (models/calibrated.py): config, layout, alert lifecycle, batching, causality."""

import csv
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models import Batch, ConfigError, NetConfig, RecurrentForecaster, Runner
from models.checkpoint import load_checkpoint
from models.replay import replay_path
from models.scoring import Scorer
from models.scoring_config import CALIBRATED_SCORING, CONTEXT_SCORING, ScoringConfig, named_scoring
from models.synthetic import SynthSeries, make_families

from .conftest import scores_alone_and_interleaved

HOUR = 3600.0


@pytest.mark.parametrize(
    "kw",
    [{"err_scales": (4,)}, {"fold_clip": 3.0}, {"max_window": 100}, {"profile_gate_slow": 100}, {"open_n": 3}],
)
def test_calibrated_refuses_options_it_does_not_use(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="calibrated scoring does not use"):
        replace(CALIBRATED_SCORING, **kw)  # type: ignore[arg-type]


def test_residual_avg_is_a_calibrated_option_of_at_least_one_event() -> None:
    with pytest.raises(ConfigError, match="residual_avg must be >= 1"):
        replace(CALIBRATED_SCORING, residual_avg=0.5)
    with pytest.raises(ConfigError, match="calibrated-scoring option"):
        ScoringConfig(residual_avg=2.0)


def test_residual_avg_averages_the_residual_statistic_before_calibration() -> None:
    """One outlier in a calm stream (forecast = the previous value: the residual is the step change)
    scores lower when the residual is averaged over 2 events; averaging over 1 is the event itself."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, 600)
    x[400] += 6.0
    ts = 1_420_416_000.0 + 300.0 * np.arange(len(x))
    one, _, _ = _run(replace(CALIBRATED_SCORING, residual_avg=1.0, profile_buckets=0, shift_short=0), x, ts)
    two, _, _ = _run(replace(CALIBRATED_SCORING, residual_avg=2.0, profile_buckets=0, shift_short=0), x, ts)
    assert two[400] < one[400]
    assert np.abs(two[:400] - one[:400]).max() > 0.0  # the statistic differs before the outlier too


def test_layout_channels_and_named_configs() -> None:
    sc = Scorer(CALIBRATED_SCORING, 1)
    assert sc.n_channels == 4 and sc.n_phases == 2 and sc.calibrated is not None and sc.calibrated.gated  # with drop
    assert sc.init_row().shape == (sc.size,)
    # residual only (what training featurises with): one channel, the season's buckets still phase 0
    only = Scorer(replace(CALIBRATED_SCORING, profile_buckets=0, shift_short=0), 1)
    assert only.n_channels == 1 and only.n_phases == 1
    with pytest.raises(ConfigError, match="masked"):
        Scorer(CALIBRATED_SCORING, 2, masked=True)
    assert named_scoring("calibrated") == CALIBRATED_SCORING and named_scoring("context") == CONTEXT_SCORING
    assert named_scoring("plain") == ScoringConfig()
    with pytest.raises(ConfigError):
        named_scoring("fancy")


def _run(cfg: ScoringConfig, x: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One stream, forecast = the current value (the residual is the step change): score, anomaly, transition."""
    sc = Scorer(cfg, 1)
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    ph = torch.from_numpy(sc.phases(ts))  # [T, P]
    out = []
    for t, v in enumerate(x):
        x_n, err = sc.pre(aux, torch.tensor([[float(v)]]), ph[t : t + 1] if sc.n_phases else None)
        out.append(sc.post(aux, err, x_n)[0, [sc.SCORE, sc.ANOMALY, sc.TRANSITION]].numpy())
    o = np.array(out)
    return o[:, 0], o[:, 1] > 0, o[:, 2]


def _swings() -> tuple[np.ndarray, np.ndarray]:
    """A calm stream, then 40 events of wild swings (rows 1200-1239), then calm again."""
    rng = np.random.default_rng(0)
    n = 1500
    ts = 1.7e9 + np.arange(n) * 300.0
    x = 10.0 + rng.normal(0, 0.1, n)
    burst = slice(1200, 1240)
    x[burst] += np.where(np.arange(40) % 2 == 0, 20.0, -15.0) * rng.uniform(0.5, 1.5, 40)
    return x, ts


def test_the_alert_follows_the_anomaly() -> None:
    """A calm stream, then 40 events of wild swings, then calm again: one alert opens at the start,
    stays open while the values still swing (the score is the evidence, never zeroed), and resolves
    ``close_after`` calm events after the swings end. The lifecycle alone: without the tail check
    (whose learning from the swings themselves is tested below)."""
    x, ts = _swings()
    cfg = replace(CALIBRATED_SCORING, tail_z=0.0)
    score, anomaly, trans = _run(cfg, x, ts)
    opened, resolved = np.flatnonzero(trans > 0), np.flatnonzero(trans < 0)
    assert opened.tolist() == [1200]
    assert anomaly[1200:1240].all()  # open for the whole burst
    # the score is the evidence: never forced to 0 during the burst, and above the close threshold
    # often enough that the alert does not resolve while the values still swing
    assert score[1200:1240].max() >= cfg.open_threshold and score[1201:1240].min() > 0.0
    assert (score[1201:1240] > cfg.close_threshold).sum() >= 10
    assert len(resolved) == 1 and 1240 <= resolved[0] <= 1240 + 3 * cfg.close_after
    assert not anomaly[resolved[0] :].any()


def test_the_bundled_scorings_alert_follows_the_anomaly_with_the_tail_check() -> None:
    """The same swings with the bundled scoring (tail check on): one alert opens at the start, stays
    open for the whole burst and resolves after it. The swings' own exceedances of z0 teach the tail
    check that this stream is wild, so a small swing mid-burst may score 0 (evidence, not a forced 0)."""
    x, ts = _swings()
    cfg = CALIBRATED_SCORING
    assert cfg.tail_z > 0.0
    score, anomaly, trans = _run(cfg, x, ts)
    opened, resolved = np.flatnonzero(trans > 0), np.flatnonzero(trans < 0)
    assert opened.tolist() == [1200]
    assert anomaly[1200:1240].all()
    assert score[1200:1240].max() >= cfg.open_threshold
    assert (score[1201:1240] > cfg.close_threshold).sum() >= 10
    assert len(resolved) == 1 and 1240 <= resolved[0] <= 1240 + 3 * cfg.close_after
    assert not anomaly[resolved[0] :].any()


def test_tail_check_is_a_calibrated_option_and_leaves_gaussian_noise_alone() -> None:
    """``tail_z`` needs the calibrated mode; on Gaussian noise (few exceedances of z0) the scores are
    those without the check, on heavy-tailed noise (Student-t, 2 degrees of freedom) they are lower."""
    with pytest.raises(ConfigError, match="tail_z"):
        ScoringConfig(tail_z=3.5)
    with pytest.raises(ConfigError, match="tail_z"):
        replace(CALIBRATED_SCORING, tail_z=-1.0)
    rng = np.random.default_rng(1)
    ts = 1_420_416_000.0 + 300.0 * np.arange(3000)
    plain = replace(CALIBRATED_SCORING, profile_buckets=0, shift_short=0, residual_avg=1.0)
    for x, same in ((rng.normal(0.0, 1.0, 3000), True), (rng.standard_t(2.0, 3000), False)):
        off, _, _ = _run(replace(plain, tail_z=0.0), x, ts)
        on, _, _ = _run(replace(plain, tail_z=3.5), x, ts)
        assert (on <= off + 1e-6).all()
        if same:
            assert np.abs(on - off).max() < 0.05
        else:
            assert (off - on)[1000:].max() > 0.05


def _policy_reference(ch: np.ndarray, cfg: ScoringConfig) -> tuple[np.ndarray, np.ndarray]:
    """The lifecycle in plain Python: per-channel scores ``ch[T, C]`` -> (score, transition)."""
    c = ch.shape[1]
    csince, since, is_open, below = np.full(c, cfg.suppress), cfg.suppress, False, 0
    score, trans = np.zeros(len(ch)), np.zeros(len(ch))
    for t, v in enumerate(ch):
        v = v if t >= 2 else np.zeros(c)
        s = v.max()
        free = [(v[i], i) for i in range(c) if not (csince[i] < cfg.suppress or since < cfg.suppress_other)]
        best, b = max(free, key=lambda p: (p[0], -p[1])) if free else (0.0, 0)
        fire = best >= cfg.open_threshold and not is_open
        below = below + 1 if s < cfg.close_threshold else 0
        resolves = is_open and below >= cfg.close_after
        opens = fire and t >= cfg.warmup
        now = (is_open or opens) and not resolves
        csince = np.minimum(csince + 1, cfg.suppress)
        if fire:
            csince[b], since = 0, 0
        else:
            since = min(since + 1, cfg.suppress)
        trans[t] = int(now) - int(is_open)
        is_open, below = now, below if now else 0
        score[t] = s
    return score, trans


def test_policy_matches_the_reference_and_blocks_per_channel() -> None:
    """Random channel scores through :meth:`CalibratedChannels.policy` equal the plain-Python
    lifecycle; the channel that opened an alert cannot open the next one within ``suppress``
    events, another channel can after ``suppress_other``."""
    cfg = replace(CALIBRATED_SCORING, warmup=20, suppress=50, suppress_other=10, close_after=3)
    sc = Scorer(cfg, 1)
    cal = sc.calibrated
    assert cal is not None
    rng = np.random.default_rng(1)
    n = 600
    c = sc.n_channels  # residual, profile, drop, shift
    ch = np.where(rng.random((n, c)) < 0.03, rng.uniform(0.3, 1.0, (n, c)), rng.uniform(0, 0.2, (n, c)))
    ch[30:200] = 0.0  # nothing from 30 on: no block is running at 100
    ch[100, 0], ch[105, 0], ch[113, 1] = 0.9, 0.95, 0.8  # same channel 5 events later: blocked; other after 13
    ch = ch.astype(np.float32).astype(np.float64)
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    got_s, got_t = [], []
    for t in range(n):
        aux[0, cal._score] = torch.tensor(ch[t], dtype=torch.float32)
        out = sc.post(aux, torch.zeros(1), torch.zeros(1, 1))
        got_s.append(float(out[0, sc.SCORE]))
        got_t.append(float(out[0, sc.TRANSITION]))
    ref_s, ref_t = _policy_reference(ch, cfg)
    np.testing.assert_allclose(got_s, ref_s, atol=1e-6)
    np.testing.assert_array_equal(got_t, ref_t)
    opened = np.flatnonzero(np.array(got_t) > 0)
    assert 100 in opened and 105 not in opened and 113 in opened
    assert got_s[105] > 0.9  # blocked from opening, but the score still says how unusual it is


@pytest.mark.parametrize("step", [300.0, HOUR])
def test_runner_with_calibrated_scoring_is_independent_of_batching(step: float) -> None:
    """Two streams interleaved in batches of different shapes give each stream's scores run alone."""
    torch.manual_seed(0)
    model = RecurrentForecaster(NetConfig(hidden_size=8))
    cfg = replace(CALIBRATED_SCORING, warmup=0)
    n = 500
    ts = 1.7e9 + np.arange(n) * step
    rng = np.random.default_rng(2)
    vals = {"a": np.sin(np.arange(n) / 7) + rng.normal(0, 0.1, n), "b": rng.normal(5, 2, n)}
    vals["b"][300:] += 6.0
    alone, got = scores_alone_and_interleaved(model, cfg, vals, ts)
    for sid in vals:
        np.testing.assert_allclose(got[sid], alone[sid], atol=1e-5)
    assert alone["b"].max() >= cfg.open_threshold


def _write(path: Path, ts: np.ndarray, x: np.ndarray) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        w.writerows([[f"{t:.0f}", f"{v:.6g}"] for t, v in zip(ts, x)])


def _scores(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return [r["anomaly_score"] for r in csv.DictReader(fh)]


def test_replaying_a_prefix_gives_identical_scores(tmp_path: Path) -> None:
    """Causality through the product path: the bundled detector replaying the first k rows of a
    series writes exactly the scores it wrote for those rows when replaying the whole series."""
    torch.set_num_threads(1)
    s = make_families(seed=3, per_family=1)["hourly"][0]
    n = len(s.values)
    _write(tmp_path / "full.csv", s.ts, s.values)
    replay_path(tmp_path / "full.csv", tmp_path / "full_out.csv", batch_size=64)
    full = _scores(tmp_path / "full_out.csv")
    for k in (n // 3, n // 2 + 17):
        _write(tmp_path / f"p{k}.csv", s.ts[:k], s.values[:k])
        replay_path(tmp_path / f"p{k}.csv", tmp_path / f"p{k}_out.csv", batch_size=64)
        assert _scores(tmp_path / f"p{k}_out.csv") == full[:k]
    assert max(float(v) for v in full) > 0.0


@pytest.mark.slow
def test_bundled_detector_is_silent_on_anomaly_free_periodic_and_flat_series() -> None:
    """Flat, white-noise, periodic and noisy-periodic series with nothing in them (the synthetic
    ``quiet`` family, seed 0, whose white noise ``noisy_1`` has a draw 4.1 sd out): the bundled
    detector opens no alert after its warm-up."""
    torch.set_num_threads(1)
    ck = load_checkpoint()
    quiet = make_families(seed=0)["quiet"]
    r = Runner(ck.model, ck.scoring, device="cpu")
    ids = [s.name for s in quiet]
    opened = 0
    for t in range(len(quiet[0].values)):
        res = r.process(Batch(ids, np.array([s.ts[t] for s in quiet]), np.array([[s.values[t]] for s in quiet])))
        opened += int((res.transition > 0).sum())
    assert opened == 0
    assert math.isclose(ck.scoring.open_threshold, 0.5)


def test_step_scale_is_a_calibrated_option_and_measures_the_mean_step() -> None:
    """``step_scale`` needs the calibrated mode; the factor is the normaliser's sd over the running mean
    of ``|x_t - x_(t-1)|`` before the event (the sd itself until one step is measured)."""
    with pytest.raises(ConfigError, match="step_scale"):
        ScoringConfig(step_scale=True)
    sc = Scorer(replace(ScoringConfig(calibrated=True), step_scale=True), 1)
    cal = sc.calibrated
    assert cal is not None
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    std = torch.tensor([[2.0]])  # [1, 1]
    got = []
    for n, v in enumerate([5.0, 6.0, 9.0, 9.0]):  # steps 1, 3, 0
        got.append(float(cal.step_factor(aux, torch.tensor([[v]]), std, torch.tensor([float(n)]))[0]))
    assert got == pytest.approx([1.0, 1.0, 2.0 / 1.0, 2.0 / 2.0])


def _opened(scoring: ScoringConfig, series: SynthSeries) -> list[int]:
    """The rows where the bundled GRU with ``scoring`` opens an alert on ``series`` (one stream)."""
    ck = load_checkpoint()
    r = Runner(ck.model, scoring, device="cpu", capacity=4)
    ts, vals = series.ts, series.values
    out = []
    for t in range(len(vals)):
        res = r.process(Batch(["s"], ts[t : t + 1], np.array([[vals[t]]], np.float32)))
        out += [t] if res.transition[0] > 0 else []
    return out


def test_step_scale_sees_a_level_shifts_return() -> None:
    """A level shift is an anomaly when it starts and again when it ends (synthetic ``shifts``, seed 1,
    ``shifts_1``: ~14 sd down for rows 1076-1577 and again for rows 2235-2803). After the first shift
    the normaliser's sd holds the shift itself, so in its units the second shift's start and end
    were small and the bundled GRU detector missed both; in step units it catches them."""
    torch.set_num_threads(1)
    series = make_families(seed=1)["shifts"][1]
    returns = [(2235, 2282), (2804, 2851)]
    assert [w for w in series.windows if w in returns] == returns
    shipped = load_checkpoint().scoring
    assert shipped.step_scale
    on = _opened(shipped, series)
    off = _opened(replace(shipped, step_scale=False), series)
    assert all(any(a <= o <= b for o in on) for a, b in returns), on
    assert not any(a <= o <= b for o in off for a, b in returns), off


def test_hold_shift_is_a_calibrated_option_and_holds_only_the_shift_channel() -> None:
    """``hold_shift`` needs the calibrated mode (without a shift channel it holds nothing); while an alert
    is open the shift channel's running mean and variance stay, the other channels' still learn."""
    with pytest.raises(ConfigError, match="hold_shift"):
        ScoringConfig(hold_shift=True, shift_short=15)
    nothing = Scorer(replace(CALIBRATED_SCORING, shift_short=0), 1).calibrated
    assert nothing is not None and nothing._hold == -1
    sc = Scorer(replace(CALIBRATED_SCORING, season_buckets=0, profile_buckets=0, hold_shift=True), 1)
    cal = sc.calibrated
    assert cal is not None and cal.n_channels == 2 and cal._hold == 1
    aux = sc.init_row().expand(2, -1).clone()  # [2, A]
    r = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # [2, C]
    ok = torch.ones(2, 2, dtype=torch.bool)
    for n in range(3):
        cal.calibrate(aux, r * (n + 1), ok, torch.full((2,), float(n)), None, torch.tensor([0.0, 1.0]))
    mean, var = aux[:, cal._mean], aux[:, cal._var]  # [2, C]
    assert mean[0, 0] == mean[1, 0] and var[0, 0] == var[1, 0]  # the residual channel learns either way
    assert mean[0, 1] > 0.0 and var[0, 1] != CALIBRATED_SCORING.err_var_prior  # no alert open: learns
    assert mean[1, 1] == 0.0 and var[1, 1] == CALIBRATED_SCORING.err_var_prior  # an alert open: held


def test_hold_shift_sees_a_level_shifts_return() -> None:
    """After a level shift's onset the shift channel's statistic stays out for ~shift_long events; folded
    into its calibration, that echo left the channel deaf to the return (synthetic ``shifts``, seed 0,
    ``shifts_5``: ~5 sd down for rows 1496-2118, the return's window 2119-2166). Held while the onset's
    alert is open, the channel sees the return."""
    torch.set_num_threads(1)
    full = make_families(seed=0)["shifts"][5]
    assert (2119, 2166) in full.windows
    series = replace(full, ts=full.ts[:2300], values=full.values[:2300])
    shipped = load_checkpoint().scoring
    assert shipped.hold_shift
    on = _opened(shipped, series)
    off = _opened(replace(shipped, hold_shift=False), series)
    assert any(1496 <= o <= 1543 for o in on) and any(1496 <= o <= 1543 for o in off)  # the onset: both
    assert any(2119 <= o <= 2166 for o in on), on
    assert not any(2119 <= o <= 2166 for o in off), off


def test_hold_release_folds_a_short_alerts_held_events_in_and_drops_a_long_ones() -> None:
    """``hold_release``: the shift channel's events held during an alert are set aside; when the alert
    resolves within ``hold_release * shift_short`` events of opening (a spike's trace) they are folded
    in after all, at the running estimate's rate of that moment (``var <- (var + a sum d^2)(1 - a)^n``,
    ``mean <- mean + a sum d``); after a longer one (a level shift's) they are dropped, as ``hold_shift``
    alone does."""
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ConfigError, match="hold_release"):
            replace(CALIBRATED_SCORING, hold_release=bad)
    with pytest.raises(ConfigError, match="hold_release"):
        ScoringConfig(hold_release=3.0)  # not calibrated
    cfg = replace(CALIBRATED_SCORING, season_buckets=0, profile_buckets=0)
    assert cfg.hold_shift and cfg.hold_release * cfg.shift_short == 45.0
    sc = Scorer(cfg, 1)
    cal = sc.calibrated
    assert cal is not None and cal._hold == 1 and cal._pend >= 0
    assert Scorer(replace(cfg, hold_release=0.0), 1).calibrated._pend == -1  # type: ignore[union-attr]
    assert Scorer(replace(cfg, hold_shift=False), 1).calibrated._pend == -1  # type: ignore[union-attr]
    b = 4
    aux = sc.init_row().expand(b, -1).clone()  # [b, A]
    ok = torch.ones(b, 2, dtype=torch.bool)
    r = torch.tensor([[1.0, 0.5]]).expand(b, -1)  # [b, C]
    for n in range(200):  # learn a calm shift statistic
        cal.calibrate(aux, r, ok, torch.full((b,), float(n)), None, torch.zeros(b))
    im, iv, ip = cal._mean.start + 1, cal._var.start + 1, cal._pend
    mean0, var0 = aux[:, im].clone(), aux[:, iv].clone()  # [b]
    for n in range(200, 210):  # an alert open on every stream: the spike's echo is held
        cal.calibrate(aux, r * 8.0, ok, torch.full((b,), float(n)), None, torch.ones(b))
    assert torch.equal(aux[:, im], mean0) and torch.equal(aux[:, iv], var0)  # held
    assert torch.equal(aux[:, ip + 2], torch.full((b,), 10.0))  # set aside
    sum_d, sum_d2 = aux[:, ip].clone(), aux[:, ip + 1].clone()  # [b]
    d8 = 4.0 - mean0  # each held deviation
    torch.testing.assert_close(sum_d, 10 * d8)
    torch.testing.assert_close(sum_d2, 10 * d8 * d8)
    aux[:, sc.SINCE] = torch.tensor([10.0, 44.0, 45.0, 60.0])  # resolved this many events after opening
    cal.calibrate(aux, r, ok, torch.full((b,), 210.0), None, torch.zeros(b))
    a = 1.0 / 211.0  # the running estimate's rate at the 211th event
    short = torch.tensor([True, True, False, False])  # within 45 events: released; from 45 on: dropped
    m_r = torch.where(short, mean0 + a * sum_d, mean0)  # [b] after the release
    v_r = torch.where(short, (var0 + a * sum_d2) * (1.0 - a) ** 10, var0)  # [b]
    d = 0.5 - m_r  # [b] this event, folded as usual
    torch.testing.assert_close(aux[:, im], m_r + a * d)
    torch.testing.assert_close(aux[:, iv], (v_r + a * d * d) * (1.0 - a))
    assert torch.equal(aux[:, ip + 2], torch.zeros(b))


def test_hold_release_counts_the_events_since_an_opening_past_a_short_block() -> None:
    """``since`` (events since an alert opened) is counted up to R for the blocks; with the release it is
    counted up to the release's limit where that is longer, so an alert that lasted longer than a short
    R but less than the limit is still a short one."""
    cfg = replace(CALIBRATED_SCORING, suppress=25, suppress_other=12)
    cal = Scorer(cfg, 1).calibrated
    assert cal is not None and cal._since_cap == 45.0
    assert Scorer(replace(cfg, hold_release=0.0), 1).calibrated._since_cap == 25.0  # type: ignore[union-attr]
    sc = Scorer(cfg, 1)
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    since = aux[:, sc.SINCE]
    since.zero_()  # an alert just opened
    zero = torch.zeros(1)
    for _ in range(60):
        cal.policy(aux, torch.full((1,), 500.0), zero, zero, since)
    assert float(since[0]) == 45.0


def test_hold_release_off_keeps_a_checkpoints_state_fingerprint() -> None:
    """An option added since fingerprints were first written is left out of a runner's state fingerprint
    while it is off, so a checkpoint that does not use it restores its streams' state after an upgrade."""
    fp = ScoringConfig().fingerprint_dict()
    assert "hold_release" not in fp
    added = ("hold_release", "drop_step", "profile_halfnormal")
    assert fp == {k: v for k, v in ScoringConfig().to_dict().items() if k not in added}
    assert CALIBRATED_SCORING.fingerprint_dict()["hold_release"] == 3.0
    model = RecurrentForecaster(NetConfig(hidden_size=8))
    on = Runner(model, CALIBRATED_SCORING, device="cpu", capacity=2)
    off = Runner(model, replace(CALIBRATED_SCORING, hold_release=0.0), device="cpu", capacity=2)
    assert on.fingerprint != off.fingerprint


def test_hold_release_learns_regular_spikes() -> None:
    """A pair of spikes every 100 events on a flat series (NAB's art_increase_spike_density before its
    window). With the shift channel held alone, each spike pair opened an alert once the last one's
    block ran out, its events were held, and the channel never learnt the spikes: an alert every 300
    events for as long as the series lasted. Released after such short alerts, the channel learns them
    and goes quiet, as a channel that is never held does."""
    torch.set_num_threads(1)
    n = 3000
    vals = np.zeros(n)
    vals[0::100] = vals[6::100] = 20.0
    series = SynthSeries("spikes", "quiet", 1.7e9 + np.arange(n) * 300.0, vals, [])
    shipped = load_checkpoint().scoring
    assert shipped.hold_shift and shipped.hold_release
    late = [o for o in _opened(shipped, series) if o >= 1000]
    held = [o for o in _opened(replace(shipped, hold_release=0.0), series) if o >= 1000]
    never = [o for o in _opened(replace(shipped, hold_shift=False), series) if o >= 1000]
    assert late == never == [], (late, never)
    assert len(held) >= 4, held


def test_drop_step_is_a_calibrated_option_and_needs_the_channels_it_compares() -> None:
    """``drop_step``: a finite number >= 0 of the calibrated scoring; the drop channel comes before the
    shift channel (the held one stays the last) and needs the profile and shift channels and the step
    scale (without them there is none, as there is nothing to hold without a shift channel)."""
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ConfigError, match="drop_step"):
            replace(CALIBRATED_SCORING, drop_step=bad)
    with pytest.raises(ConfigError, match="drop_step"):
        ScoringConfig(drop_step=0.25)  # not calibrated
    on = replace(CALIBRATED_SCORING, drop_step=0.25)
    sc = Scorer(on, 1)
    cal = sc.calibrated
    assert cal is not None and sc.n_channels == 4 and cal._hold == 3 and cal.n_hourly == 2
    # a channel's mean, variance, score, block and tail rate; the expectation [T] and the flag
    assert sc.size == Scorer(replace(on, drop_step=0.0), 1).size + 5 + 2
    assert float(sc.init_row()[cal._drop.stop - 1]) == 1.0  # no value below 0 yet
    assert Scorer(on, 3).size == Scorer(replace(on, drop_step=0.0), 3).size + 5 + 3 + 1  # T = 3 targets
    with pytest.raises(ConfigError, match="min_std"):
        replace(on, min_std=0.0)
    for kw in ({"profile_buckets": 0}, {"shift_short": 0}, {"step_scale": False}):
        c = replace(on, **kw)  # type: ignore[arg-type]
        assert not c.drop_channel and Scorer(c, 1).n_channels == Scorer(replace(c, drop_step=0.0), 1).n_channels
        assert c.fingerprint_dict() == replace(c, drop_step=0.0).fingerprint_dict()  # the same state


def test_drop_channel_statistic_against_a_reference() -> None:
    """:meth:`CalibratedChannels.drop` against its formula: E moves toward the profile mean (the value
    itself in a bucket not seen before) at max(1 / (count + 1), 1 / shift_short); r = mean over the
    targets of log((E + c) / (S + c)), c = drop_step x max(mean |step|, 1e-3 sd, min_std); 0 where
    undefined (the first two events, an unseen bucket, any value below 0 so far, for good)."""
    cfg = replace(CALIBRATED_SCORING, drop_step=0.5)
    sc = Scorer(cfg, 2)
    cal = sc.calibrated
    assert cal is not None
    aux = sc.init_row().expand(4, -1).clone()  # [4, A]
    t = 2
    e0 = torch.tensor([[10.0, 20.0], [10.0, 20.0], [3.0, 3.0], [5.0, 5.0]])  # [4, T]
    aux[:, cal._drop.start : cal._drop.start + t] = e0
    step = torch.tensor([[2.0, 4.0], [2.0, 4.0], [1e-9, 1e-9], [1.0, 1.0]])  # [4, T] mean |step|
    aux[:, cal._step.start + t : cal._step.start + 2 * t] = step
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [-1.0, 4.0]])  # [4, T]
    m = torch.tensor([[12.0, 18.0], [12.0, 18.0], [3.0, 3.0], [5.0, 5.0]])  # [4, T] profile means
    seen = torch.tensor([True, False, True, True])
    ms = torch.tensor([[2.0, 3.0], [2.0, 3.0], [0.5, 0.5], [4.0, 4.0]])  # [4, T] short means
    std = torch.tensor([[5.0, 5.0], [5.0, 5.0], [0.01, 0.01], [1.0, 1.0]])  # [4, T]
    count = torch.tensor([100.0, 100.0, 1.0, 100.0])
    r, ok = cal.drop(aux, x, m, seen, ms, std, count)
    a = 1.0 / cfg.shift_short
    e = e0[0] + a * (m[0] - e0[0])
    c = 0.5 * step[0]
    assert ok.tolist() == [True, False, False, False]  # defined / unseen bucket / 2nd event / below 0
    np.testing.assert_allclose(float(r[0]), float(torch.log((e + c) / (ms[0] + c)).mean()), rtol=1e-6)
    assert r[1:].tolist() == [0.0, 0.0, 0.0]
    e1 = e0[1] + a * (x[1] - e0[1])  # an unseen bucket expects the value itself
    torch.testing.assert_close(aux[1, cal._drop.start : cal._drop.start + t], e1)
    # row 2, count 1: E moves at 1 / (count + 1) (exact from the first events); not defined yet
    e2 = e0[2] + 0.5 * (m[2] - e0[2])
    torch.testing.assert_close(aux[2, cal._drop.start : cal._drop.start + t], e2)
    assert float(aux[3, cal._drop.stop - 1]) == 0.0 and float(aux[0, cal._drop.stop - 1]) == 1.0
    r3, ok3 = cal.drop(aux[3:], torch.tensor([[5.0, 5.0]]), m[3:], seen[3:], ms[3:], std[3:], count[3:])
    assert not bool(ok3[0]) and float(r3[0]) == 0.0  # off for good after a value below 0


def test_drop_step_off_keeps_a_checkpoints_state_fingerprint() -> None:
    fp = ScoringConfig().fingerprint_dict()
    assert "drop_step" not in fp and "drop_step" in ScoringConfig().to_dict()
    assert replace(CALIBRATED_SCORING, drop_step=0.25).fingerprint_dict()["drop_step"] == 0.25


def test_drop_channel_sees_an_outage_of_a_count_series() -> None:
    """An outage of a count series (synthetic ``counts``, seed 0, ``counts_4``: 9 % of its rate for rows
    8827-8895). In linear units a fall to zero is bounded by the level while the counts' upward noise
    (bursts, a multiplicative wander) is not, so the ``|deviation|`` channels never see it; the drop
    channel measures the fall as a ratio and does. A series that goes below 0 has no drop channel."""
    torch.set_num_threads(1)
    series = make_families(seed=0)["counts"][4]
    outage = (8827, 8895)
    assert outage in series.windows and series.values.min() >= 0.0
    shipped = load_checkpoint().scoring
    assert shipped.drop_channel
    on = _opened(shipped, series)
    off = _opened(replace(shipped, drop_step=0.0), series)
    assert any(outage[0] <= o <= outage[1] for o in on), on
    assert not any(outage[0] <= o <= outage[1] for o in off), off
    vals = series.values.copy()
    vals[200] = -1.0  # once below 0: not a count, a rate or a level that a ratio measures
    below = SynthSeries("below", "counts", series.ts, vals, series.windows)
    assert not any(outage[0] <= o <= outage[1] for o in _opened(shipped, below))


def _halfnormal_row(halfnormal: bool, tail_z: float = 0.0):  # type: ignore[no-untyped-def]
    """A bundled-config scorer whose profile and shift channels have the running mean and variance of a
    half-normal statistic of scale 1 (mean sqrt(2/pi), variance 1 - 2/pi) and no time-of-day variance."""
    sc = Scorer(replace(CALIBRATED_SCORING, tail_z=tail_z, profile_halfnormal=halfnormal), 1)
    cal = sc.calibrated
    assert cal is not None and cal.n_channels == 4
    aux = sc.init_row().unsqueeze(0).clone()  # [1, A]
    mu, v = math.sqrt(2.0 / math.pi), 1.0 - 2.0 / math.pi
    aux[:, cal._mean] = torch.tensor([0.0, mu, 0.0, mu])
    aux[:, cal._var] = torch.tensor([1.0, v, 1.0, v])
    aux[:, cal._bcount : cal._bcount + cal.n_buckets] = 0.0  # no time-of-day variance yet
    return sc, cal, aux


def _calibrate_once(cal, aux, r: list[float]) -> list[float]:  # type: ignore[no-untyped-def]
    ok = torch.ones(1, 4, dtype=torch.bool)
    cal.calibrate(aux, torch.tensor([r]), ok, torch.tensor([1000.0]), torch.zeros(1), torch.zeros(1))
    return aux[0, cal._score].tolist()  # type: ignore[no-any-return]


def test_profile_halfnormal_scores_white_noise_as_a_half_normal() -> None:
    """The profile channel of a stream whose values scatter around their profile: its statistic is
    half-normal (mean s sqrt(2/pi), variance s^2 (1 - 2/pi), root mean square s). A value 4 s out is a
    two-sided 4-sd draw, p = 6.3e-5: with the half-normal null that is what the channel scores; the
    location-scale Gaussian put it at z = (4 - 0.80) / 0.60 = 5.3, p = 5.7e-8, a score 1.7 times as far
    from 0."""
    scores = {}
    for halfnormal in (True, False):
        _, cal, aux = _halfnormal_row(halfnormal)
        scores[halfnormal] = _calibrate_once(cal, aux, [0.0, 4.0, 0.0, 4.0])  # profile and shift 4 s out
    c = 4  # Bonferroni
    want = math.log(c * math.erfc(4.0 / math.sqrt(2.0)) + c * 1e-10) / math.log(1e-10)
    assert scores[True][1] == pytest.approx(want, rel=1e-4)
    assert scores[False][1] > 1.6 * scores[True][1]
    assert scores[True][3] == scores[False][3]  # the shift channel keeps the Gaussian


def test_profile_halfnormal_tail_check_compares_with_the_half_normal_rate() -> None:
    """With the tail check, the profile channel's p is multiplied by (its rate of z > z0) / (the
    half-normal's rate there, P(|N(0, rms^2)| > mean + z0 sd)), never divided; the other channels keep
    the Gaussian rate q0."""
    z0, r = 3.5, 4.0
    mu, v = math.sqrt(2.0 / math.pi), 1.0 - 2.0 / math.pi
    q_hn = math.erfc((mu + z0 * math.sqrt(v)) / math.sqrt(2.0))  # rms = 1
    for rate in (q_hn / 2.0, 20.0 * q_hn):
        _, cal, aux = _halfnormal_row(True, tail_z=z0)
        aux[:, cal._exc] = rate
        got = _calibrate_once(cal, aux, [0.0, r, 0.0, 0.0])[1]
        p = 4 * math.erfc(r / math.sqrt(2.0)) * max(rate / q_hn, 1.0)
        assert got == pytest.approx(math.log(p + 4e-10) / math.log(1e-10), rel=1e-4)


def test_profile_halfnormal_is_a_calibrated_option_left_out_of_old_fingerprints() -> None:
    with pytest.raises(ConfigError, match="profile_halfnormal"):
        ScoringConfig(profile_halfnormal=True)  # not calibrated
    assert "profile_halfnormal" not in ScoringConfig().fingerprint_dict()
    assert CALIBRATED_SCORING.fingerprint_dict()["profile_halfnormal"] is True
    no_profile = replace(CALIBRATED_SCORING, profile_buckets=0, drop_step=0.0)
    assert no_profile.fingerprint_dict() == replace(no_profile, profile_halfnormal=False).fingerprint_dict()
    off = replace(CALIBRATED_SCORING, profile_halfnormal=False)
    assert Scorer(CALIBRATED_SCORING, 1).size == Scorer(off, 1).size  # no state of its own
    with pytest.raises(ConfigError, match="tail_z"):
        replace(CALIBRATED_SCORING, tail_z=9.0)  # the null's rate at z0 would underflow float32
