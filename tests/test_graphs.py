"""CUDA-graph waves: the padding scheme is exact (checked on CPU with a replay stand-in), and the
real graphs equal the eager path on a GPU (``gpu`` marker; skipped without CUDA)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from models import Batch, NetConfig, RecurrentForecaster, Runner, ScoringConfig
from models.graphs import WaveGraphs


class _FakeGraph:
    """Stands in for ``torch.cuda.CUDAGraph`` on CPU: replay runs the wave on the static buffers."""

    def __init__(self, wave: Any, s_idx: torch.Tensor, s_x: torch.Tensor, s_dt: Any, s_out: torch.Tensor) -> None:
        self.wave, self.s_idx, self.s_x, self.s_dt, self.s_out = wave, s_idx, s_x, s_dt, s_out

    def replay(self) -> None:
        self.s_out.copy_(self.wave(self.s_idx, self.s_x, self.s_dt))


class _CpuGraphs(WaveGraphs):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.enabled = True  # exercise bucketing and padding on CPU

    def __call__(self, idx: torch.Tensor, x: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
        layout = self.storage()
        if layout != self._layout:
            self._graphs.clear()
            self._warm.clear()
            self._layout = layout
        self._warm.add((self.bucket(idx.shape[0]), dt is not None, layout))  # no side stream on CPU: no warm-up
        return super().__call__(idx, x, dt)

    def _capture(self, b: int, key: Any, x: torch.Tensor, dt: torch.Tensor | None) -> Any:
        s_idx = torch.zeros(b, dtype=torch.int64)
        s_x = torch.zeros((b, x.shape[1]), dtype=x.dtype)
        s_dt = torch.zeros(b, dtype=dt.dtype) if dt is not None else None
        s_out = torch.zeros((b, self.wave(s_idx[:0], s_x[:0], None if s_dt is None else s_dt[:0]).shape[1]))
        entry = (_FakeGraph(self.wave, s_idx, s_x, s_dt, s_out), s_idx, s_x, s_dt, s_out)
        self._graphs[key] = entry  # type: ignore[assignment]
        self.captures += 1
        return self._graphs[key]


def _runners(cell: str, device: str = "cpu", graphs: type[WaveGraphs] = _CpuGraphs) -> tuple[Runner, Runner, Any]:
    torch.manual_seed(0)
    net = RecurrentForecaster(NetConfig(cell=cell, input_size=2, hidden_size=16, num_layers=2))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    out = []
    for _ in range(2):
        m = RecurrentForecaster(net.config)
        m.load_state_dict(state)
        out.append(Runner(m, ScoringConfig(warmup=5), device=device, capacity=64, cuda_graphs=False))
    eager, graphed = out
    g = graphs(
        Runner._wave.__get__(graphed),
        storage=lambda: (graphed.slab.hidden.data_ptr(), graphed.slab.aux.data_ptr()),
        device=graphed.device,
        min_bucket=8,
    )
    graphed._wave = g  # type: ignore[method-assign]
    # as the Runner does whenever it builds wave graphs: the padding repeats a wave's last slot, which only
    # gathered rows (each copy scattered back with the same values) tolerate, not rows updated in place
    graphed.aux_in_place = False
    return eager, graphed, g


def _compare(eager: Runner, graphed: Runner, steps: int = 40) -> None:
    rng = np.random.default_rng(5)
    for k in range(steps):
        n = int(rng.integers(1, 90))
        ids = [f"s{i}" for i in rng.integers(0, 150, n)]  # repeats -> waves; > capacity -> slab growth
        x = rng.normal(size=(n, 2)).astype(np.float32)
        x[rng.random(n) < 0.05] += 30.0
        a = eager.process(Batch(ids, np.full(n, float(k)), x))
        b = graphed.process(Batch(ids, np.full(n, float(k)), x))
        np.testing.assert_allclose(b.prediction, a.prediction, rtol=0, atol=1e-5)
        np.testing.assert_allclose(b.score, a.score, rtol=0, atol=1e-5)
        assert (a.anomaly == b.anomaly).all() and (a.transition == b.transition).all()
    for sid in eager.slab.stream_ids():
        se, sg = eager.slab.snapshot([sid]), graphed.slab.snapshot([sid])
        np.testing.assert_allclose(sg.hidden, se.hidden, atol=1e-5)
        np.testing.assert_allclose(sg.aux, se.aux, atol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_repeats_the_last_row_and_keeps_state_exact(cell: str) -> None:
    eager, graphed, g = _runners(cell)
    _compare(eager, graphed)
    assert g.replays > 0 and g.captures > 0
    assert graphed.slab.capacity > 64  # the slab grew: graphs of the old layout were dropped
    assert all(k[2] == g.storage() for k in g._graphs)


def test_buckets_are_powers_of_two_with_a_floor() -> None:
    g = WaveGraphs(lambda i, x: x, storage=lambda: (), device=torch.device("cpu"), min_bucket=256)
    assert [g.bucket(n) for n in (1, 256, 257, 1000, 1024, 1025)] == [256, 256, 512, 1024, 1024, 2048]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_cuda_graphs_equal_the_eager_path(cell: str) -> None:
    eager, graphed, g = _runners(cell, device="cuda", graphs=WaveGraphs)
    _compare(eager, graphed)
    assert g.replays > 0
