"""Runner: batching must not change results; bad rows are rejected, counted, and never advance state."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import Batch, ConfigError, InputError, NetConfig, RecurrentForecaster, Runner, ScoringConfig

from .conftest import make_runner


def _events(n_streams: int, length: int, features: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(length):
        for s in range(n_streams):
            v = np.sin(t / 7 + s) * (s + 1) + rng.normal(0, 0.1, features)
            rows.append((f"s{s}", float(t), v.astype(np.float32).tolist()))
    return rows


def _run(runner, rows, batch_size):
    preds, scores = [], []
    for a in range(0, len(rows), batch_size):
        res = runner.process(Batch.from_rows(rows[a : a + batch_size]))
        assert res.accepted.all()
        preds.append(res.prediction)
        scores.append(res.score)
    return np.concatenate(preds), np.concatenate(scores)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_interleaved_streams_equal_each_stream_alone(cell: str) -> None:
    rows = _events(n_streams=9, length=40, features=2)
    rng = np.random.default_rng(1)
    # shuffle streams against each other but keep each stream's own order
    order = sorted(range(len(rows)), key=lambda i: (rows[i][1] + rng.uniform(0, 3), i))
    by_stream: dict[str, list[int]] = {}
    for i in order:
        by_stream.setdefault(rows[i][0], []).append(i)
    order = [i for i in order]
    mixed = [rows[i] for i in order]
    # keep per-stream order monotonic after the shuffle
    seen: dict[str, int] = {}
    fixed = []
    for sid, _, v in mixed:
        k = seen.get(sid, 0)
        seen[sid] = k + 1
        fixed.append((sid, float(k), v))
    big = make_runner(cell, features=2)
    p_mixed, s_mixed = _run(big, fixed, batch_size=37)  # batches hold the same stream several times
    for sid in {r[0] for r in fixed}:
        alone = make_runner(cell, features=2)
        idx = [i for i, r in enumerate(fixed) if r[0] == sid]
        p_alone, s_alone = _run(alone, [fixed[i] for i in idx], batch_size=1)
        np.testing.assert_allclose(p_mixed[idx], p_alone, atol=1e-5)
        np.testing.assert_allclose(s_mixed[idx], s_alone, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(batch_size=st.integers(1, 64), n_streams=st.integers(1, 6))
def test_micro_batch_size_does_not_change_results(batch_size: int, n_streams: int) -> None:
    rows = _events(n_streams, 25)
    p_ref, s_ref = _run(make_runner(), rows, batch_size=len(rows))
    p, s = _run(make_runner(), rows, batch_size=batch_size)
    np.testing.assert_allclose(p, p_ref, atol=1e-5)
    np.testing.assert_allclose(s, s_ref, atol=1e-5)


def test_non_finite_and_out_of_order_rows_are_rejected_without_touching_state() -> None:
    r, ref = make_runner(), make_runner()
    rows = [
        ("a", 0.0, [1.0]),
        ("a", 1.0, [float("nan")]),
        ("a", 2.0, [2.0]),
        ("a", 1.5, [9.0]),
        ("b", 0.0, [float("inf")]),
    ]
    res = r.process(Batch.from_rows(rows))
    assert res.accepted.tolist() == [True, False, True, False, False]
    assert res.reason == [None, "non_finite", None, "out_of_order", "non_finite"]
    assert np.isnan(res.prediction[1]).all() and res.score[3] == 0
    good = ref.process(Batch.from_rows([("a", 0.0, [1.0]), ("a", 2.0, [2.0])]))
    np.testing.assert_allclose(res.prediction[[0, 2]], good.prediction, atol=1e-6)
    assert r.rejected == 3 and r.events == 2
    assert "b" not in r.slab  # a stream whose only event was rejected takes no slot


def test_equal_timestamps_are_accepted_in_order() -> None:
    r = make_runner()
    res = r.process(Batch.from_rows([("a", 5.0, [1.0]), ("a", 5.0, [2.0])]))
    assert res.accepted.all()


def test_wrong_vector_length_is_a_clear_error() -> None:
    r = make_runner(features=2)
    with pytest.raises(InputError, match="2 feature"):
        r.process(Batch(["a"], np.zeros(1), np.zeros((1, 3), np.float32)))


def test_scores_are_causal() -> None:
    """Changing the future never changes past outputs."""
    rows = _events(3, 60)
    p1, s1 = _run(make_runner(), rows, 16)
    changed = rows[:90] + [(sid, t, [v[0] * 50 + 7]) for sid, t, v in rows[90:]]
    p2, s2 = _run(make_runner(), changed, 16)
    np.testing.assert_array_equal(p1[:90], p2[:90])
    np.testing.assert_array_equal(s1[:90], s2[:90])
    assert not np.allclose(s1[90:], s2[90:])


def test_injected_anomaly_opens_then_resolves_an_alert_after_warmup() -> None:
    scoring = ScoringConfig(warmup=100, open_threshold=0.5, close_threshold=0.3, close_after=5)
    r = make_runner(scoring=scoring)
    rng = np.random.default_rng(0)
    n = 600
    values = {s: np.sin(np.arange(n) / 10 + k) + rng.normal(0, 0.05, n) for k, s in enumerate(["quiet", "hit"])}
    values["hit"][400:403] += 8.0  # a short, large spike
    transitions, flags = {"quiet": [], "hit": []}, {"quiet": 0, "hit": 0}
    for t in range(n):
        res = r.process(Batch.from_rows([(s, float(t), [values[s][t]]) for s in ("quiet", "hit")]))
        for a in res.alerts:
            transitions[a.stream_id].append((t, a.state))
            assert a.expected and a.actual
        for k, s in enumerate(("quiet", "hit")):
            flags[s] += int(res.anomaly[k])
            if t < 100:
                assert not res.anomaly[k]
    assert transitions["quiet"] == []
    opened = [t for t, s in transitions["hit"] if s == "open"]
    assert opened and 400 <= opened[0] <= 403
    assert "resolved" in [s for _, s in transitions["hit"]], transitions["hit"]
    assert flags["hit"] >= 1


def test_snapshot_restore_continues_identically() -> None:
    rows = _events(4, 50)
    a = make_runner()
    _run(a, rows[:100], 10)
    snap = a.slab.snapshot()
    b = make_runner()
    b.slab.restore(snap)
    pa, sa = _run(a, rows[100:], 10)
    pb, sb = _run(b, rows[100:], 10)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(sa, sb)


def test_lru_eviction_under_load_keeps_running() -> None:
    r = make_runner(capacity=8, max_capacity=8, eviction="lru")
    for t in range(5):
        res = r.process(Batch.from_rows([(f"s{i}", float(t), [float(i)]) for i in range(t * 8, t * 8 + 8)]))
        assert res.accepted.all()
    assert len(r.slab) == 8 and r.slab.evictions == 32


def test_process_runs_under_inference_mode_and_keeps_no_graph() -> None:
    r = make_runner()
    r.process(Batch.from_rows([("a", 0.0, [1.0])]))
    assert not r.slab.hidden.requires_grad
    assert all(not p.requires_grad for p in r.model.parameters())
    assert r.slab.hidden.dtype == torch.float32


def test_ttl_eviction_sweeps_idle_streams_by_event_time() -> None:
    r = make_runner(eviction="ttl", ttl_seconds=100.0)
    r.process(Batch.from_rows([("old", 0.0, [1.0]), ("live", 0.0, [1.0])]))
    for t in range(1, 40):
        r.process(Batch.from_rows([("live", t * 10.0, [1.0])]))
    assert "old" not in r.slab and "live" in r.slab
    assert r.slab.evictions == 1
    res = r.process(Batch.from_rows([("old", 400.0, [1.0])]))  # comes back with a fresh state
    assert res.accepted.all() and r.slab.steps[r.slab.slot("old")] == 1


def test_reduced_precision_step_stays_close_and_keeps_fp32_state() -> None:
    torch.manual_seed(0)
    net = RecurrentForecaster(NetConfig(cell="gru", input_size=2, hidden_size=32))
    low_net = RecurrentForecaster(net.config)
    low_net.load_state_dict(net.state_dict())
    ref = Runner(net, ScoringConfig(warmup=5), device="cpu")
    low = Runner(low_net, ScoringConfig(warmup=5), device="cpu", compute_dtype="bfloat16")
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(50)]
    for k in range(40):
        x = rng.normal(size=(50, 2)).astype(np.float32)
        a = ref.process(Batch(ids, np.full(50, float(k)), x))
        b = low.process(Batch(ids, np.full(50, float(k)), x))
        np.testing.assert_allclose(b.prediction, a.prediction, rtol=0.05, atol=0.05)
    assert low.slab.hidden.dtype == torch.float32 and low.model.head.weight.dtype == torch.float32
    with pytest.raises(ConfigError, match="compute_dtype"):
        Runner(net, device="cpu", compute_dtype="int8")


def _staged_vs_direct(make: object, batches: list[Batch]) -> None:
    """The staging buffer (one host buffer, one copy; CUDA's path) gives the direct path's results bit for bit."""
    from models.runner import _Staging

    direct, staged = make(), make()  # type: ignore[operator]
    staged._staging = _Staging(torch.device("cpu"))  # the CUDA path's packing, on the CPU
    assert direct._staging is None  # CPU runners use the arrays as they are
    for b in batches:
        r1, r2 = direct.process(b), staged.process(b)
        for name in ("accepted", "prediction", "expected", "score", "anomaly", "transition"):
            a1, a2 = getattr(r1, name), getattr(r2, name)
            assert a1.tobytes() == a2.tobytes(), name
        assert r1.reason == r2.reason
    for a, b in ((direct.slab.hidden, staged.slab.hidden), (direct.slab.aux, staged.slab.aux)):
        assert a.numpy().tobytes() == b.numpy().tobytes()  # bit for bit, NaN included
    if make().features.needs_dt:  # type: ignore[operator]
        assert np.isnan(direct.slab.aux.numpy()).any()  # (ticks keep NaN in their state: why bytes, not torch.equal)


def _mixed_batches(n_streams: int, f: int, rounds: int, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    t = 1.7e9
    for _r in range(rounds):
        n = int(rng.integers(1, 300))
        ids = [f"s{int(k)}" for k in rng.integers(0, n_streams, n)]  # repeats -> several waves
        ts = t + np.sort(rng.uniform(0, 600, n))
        ts[rng.random(n) < 0.05] -= 1e4  # some out of order
        x = rng.standard_normal((n, f)).astype(np.float32)
        x[rng.random(n) < 0.03] = np.nan  # some rejected
        out.append(Batch(ids, ts, x))
        t += 600
    return out


def test_staging_buffer_equals_direct_inputs() -> None:
    from dataclasses import replace

    from models.scoring_config import CONTEXT_SCORING

    _staged_vs_direct(lambda: make_runner(hidden=8), _mixed_batches(40, 1, 25))
    ctx = replace(CONTEXT_SCORING, warmup=5)  # phase columns travel with the values
    _staged_vs_direct(lambda: make_runner(hidden=8, scoring=ctx), _mixed_batches(40, 1, 25, seed=1))
    _staged_vs_direct(lambda: make_runner(features=3, hidden=8), _mixed_batches(40, 3, 10, seed=2))


def test_staging_buffer_carries_time_gaps_for_ticks() -> None:
    cfg = NetConfig(input_size=7, output_size=2, hidden_size=8, inputs="ticks", residual=False)

    def make() -> Runner:
        torch.manual_seed(0)
        return Runner(RecurrentForecaster(cfg), ScoringConfig(), device="cpu")

    rng = np.random.default_rng(3)
    batches = []
    for b in _mixed_batches(20, 4, 12, seed=4):
        x = np.abs(b.x) + 1.0  # price, size, bid, ask: positive
        x[:, 2:] = np.where(rng.random((len(b), 1)) < 0.3, np.nan, x[:, 2:])  # some without a quote
        batches.append(Batch(b.stream_ids, b.ts, x.astype(np.float32)))
    assert make().features.needs_dt
    _staged_vs_direct(make, batches)


def test_threshold_is_the_scorings_open_threshold(runner_factory) -> None:
    """StreamRunner.threshold: the score at which an alert opens, what the Kafka side writes into alerts."""
    r = runner_factory(scoring=ScoringConfig(open_threshold=0.7, close_threshold=0.3))
    assert r.threshold == 0.7 and isinstance(r.threshold, float)
