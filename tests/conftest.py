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
