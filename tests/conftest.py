import numpy as np
import pytest
import torch

from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig


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
