"""A micro-batch with several events of a stream runs them as one sequence step on the CPU
(``Runner.sequence``): the features' pre-forecast part over every row in one call, the model once per
wave, the scoring in one call. It must give exactly what one wave per event gives: the same outputs,
alerts and slab (hidden state and aux), bit for bit, for the plain and calibrated scorers (raw values),
the masked features and the ticks rules.
"""

from __future__ import annotations

from typing import Any

from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig
from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

from .conftest import raw_batches, same_runs, tick_batches

_DIR = DEFAULT_CHECKPOINT.parent


def _pair(make: Any) -> tuple[Runner, Runner, list[int]]:
    """Two runners alike but for the sequence step; the list counts the sequence steps taken."""
    seq, waves = make(), make()
    waves.sequence = False
    taken: list[int] = []
    inner = seq._sequence

    def spy(idx: Any, x: Any, dt: Any, spans: Any) -> Any:
        taken.append(len(spans))
        return inner(idx, x, dt, spans)

    seq._sequence = spy  # type: ignore[method-assign]
    return seq, waves, taken


def test_plain_scorer_sequence_equals_waves() -> None:
    def make() -> Runner:
        import torch

        torch.manual_seed(0)
        net = RecurrentForecaster(NetConfig(input_size=3, hidden_size=8))
        return Runner(net, ScoringConfig(warmup=5, close_after=2, err_scales=(4,)), device="cpu", capacity=2)

    seq, waves, taken = _pair(make)
    assert seq.features.in_place
    assert same_runs(seq, waves, raw_batches(3, 1)) > 0  # alerts opened (and the slab grew from 2 slots)
    assert len(taken) >= 40 and max(taken) >= 5  # most batches ran as sequence steps, some of 5+ waves


def test_sequence_steps_the_model_per_chunk_of_a_wave_as_waves_do() -> None:
    """Large waves are stepped in chunks of ``cpu_chunk`` rows (any split of a wave gives the same numbers):
    a sequence step steps the same spans."""

    def make() -> Runner:
        import torch

        torch.manual_seed(1)
        net = RecurrentForecaster(NetConfig(input_size=2, hidden_size=8))
        r = Runner(net, ScoringConfig(warmup=5, close_after=2), device="cpu", capacity=8)
        r.cpu_chunk = 3
        return r

    seq, waves, taken = _pair(make)
    same_runs(seq, waves, raw_batches(2, 6, streams=12))
    assert taken and max(taken) > 8  # more spans than waves: chunks of 3 rows


def test_gathered_aux_rows_keep_their_waves() -> None:
    """A sequence step works on the slab's aux in place: a runner whose aux rows are gathered
    (``aux_in_place`` off, as on CUDA) runs waves."""
    ck = load_checkpoint(str(_DIR / "speech_gru.pt"))
    seq, waves, taken = _pair(lambda: Runner(ck.model, ck.scoring, device="cpu", capacity=4))
    seq.aux_in_place = False
    same_runs(seq, waves, raw_batches(seq.n_features, 7)[:10])
    assert taken == []


def test_bundled_speech_detector_sequence_equals_waves() -> None:
    ck = load_checkpoint(str(_DIR / "speech_gru.pt"))
    seq, waves, taken = _pair(lambda: Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id="speech"))
    same_runs(seq, waves, raw_batches(seq.n_features, 2))
    assert len(taken) >= 40


def test_bundled_ticks_sequence_equals_waves() -> None:
    """The rules run every tick of the batch first; the outputs take each tick's spread and size from
    its own evidence, not from the symbol's state, which the later ticks have moved on."""
    ck = load_checkpoint(str(_DIR / "ticks_gru.pt"))
    seq, waves, taken = _pair(lambda: Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id="ticks"))
    assert seq.features.in_place
    batches = tick_batches(3, symbols=8, batches=80, max_n=60, jump_p=0.03, late_p=0.02)
    assert same_runs(seq, waves, batches) > 0  # rule alerts opened
    assert len(taken) >= 60 and max(taken) >= 8


def test_bundled_sensor_detector_sequence_equals_waves() -> None:
    """The calibrated scorer: the residual, its season bucket, its averaging and its channel's calibration
    wait for the forecast; the profile and shift channels, the time-of-day bucket counts and the
    normaliser run ahead, and each row keeps what its own event saw."""
    ck = load_checkpoint(str(_DIR / "sensor_gru.pt"))
    seq, waves, taken = _pair(lambda: Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id="sensor"))
    assert seq.features.in_place and seq.scorer.n_phases  # event-time buckets travel with the values
    assert same_runs(seq, waves, raw_batches(1, 5, streams=8)) > 0  # alerts opened after the warm-up
    assert len(taken) >= 40


def test_bundled_machines_detector_sequence_equals_waves() -> None:
    """Masked values: the imputation and the normaliser run ahead; each feature's residual over its own
    scale, and the channel that names an alert, wait for the forecast (with the counts the event saw)."""
    ck = load_checkpoint(str(_DIR / "machine_gru.pt"))
    seq, waves, taken = _pair(lambda: Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id="machines"))
    assert seq.features.in_place
    assert same_runs(seq, waves, raw_batches(seq.n_features, 4, masked=True, streams=10)) > 0  # alerts opened
    assert len(taken) >= 40


def test_bundled_sensor_detector_releases_held_shift_events_alike_in_sequence_steps() -> None:
    """Spike pairs every 100 events on flat streams: alerts that resolve soon after opening, whose held
    shift-channel events are released (``hold_release``). In a sequence step the held channel is
    calibrated after the stream's previous row's lifecycle, so a release there must match the waves'."""
    import numpy as np

    from models.types import Batch

    ck = load_checkpoint(str(_DIR / "sensor_gru.pt"))
    assert ck.scoring.hold_release
    seq, waves, taken = _pair(lambda: Runner(ck.model, ck.scoring, device="cpu", capacity=4, model_id="sensor"))
    cal = seq.scorer.calibrated
    assert cal is not None and cal._pend >= 0
    streams, per, n = 3, 5, 1500
    vals = np.zeros((n, streams), np.float32)
    for j in range(streams):
        vals[7 * j :: 100, j] = vals[7 * j + 6 :: 100, j] = 20.0
    limit = ck.scoring.hold_release * ck.scoring.shift_short
    set_aside = released = 0
    for k in range(0, n, per):
        ids = [f"s{j}" for _ in range(per) for j in range(streams)]  # a stream's rows interleaved
        ts = 1.7e9 + np.repeat(np.arange(k, k + per), streams) * 300.0
        x = vals[k : k + per].reshape(-1, 1)  # [per * streams, 1] row-major: event k, then k + 1, ...
        m = len(seq.slab)
        before = seq.slab.aux[:m, [cal._pend + 2, seq.scorer.SINCE]].clone()  # [m, 2] held count, since
        same_runs(seq, waves, [Batch(ids, ts, x)])
        held = seq.slab.aux[:m, cal._pend + 2]  # [m]
        set_aside += int((held > 0).sum())
        # an alert that resolved within the limit during this step (ends of a step's last rows aside)
        released += int(((before[:, 0] > 0) & (held == 0) & (before[:, 1] < limit)).sum())
    assert len(taken) >= n // per // 2  # sequence steps ran
    assert set_aside > 0 and released >= 3  # held events were set aside, and short alerts released them
