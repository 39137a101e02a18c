"""Step-wise inference must equal the whole-sequence torch.nn.GRU/LSTM."""

import pytest
import torch
from torch import nn

from models import NetConfig, RecurrentForecaster


def _randomised(cfg: NetConfig, seed: int = 0) -> RecurrentForecaster:
    torch.manual_seed(seed)
    net = RecurrentForecaster(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.4)
    return net.eval()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_step_equals_torch_rnn_over_sequence(cell: str, layers: int) -> None:
    net = _randomised(NetConfig(cell=cell, input_size=3, hidden_size=16, num_layers=layers, residual=False))
    x = torch.randn(5, 60, 3)  # [B, T, F]
    # reference: the plain torch.nn.GRU/LSTM over the whole sequence, then the head
    ref_out, _ = net.rnn(x)  # [B, T, H]
    ref = net.head(ref_out)  # [B, T, F]
    state = net.zero_state(5)
    ys = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            y, state = net.step(x[:, t], state)
            ys.append(y)
    assert (torch.stack(ys, 1) - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_step_equals_forward_with_projection_and_initial_state(cell: str, layers: int) -> None:
    net = _randomised(NetConfig(cell=cell, input_size=2, hidden_size=8, num_layers=layers, proj_size=5), seed=1)
    x = torch.randn(4, 40, 2)
    s0 = torch.randn(4, layers, net.config.state_parts, 8) * 0.5
    with torch.no_grad():
        y_seq, final = net(x, s0)
        state, ys = s0, []
        for t in range(40):
            y, state = net.step(x[:, t], state)
            ys.append(y)
    assert (torch.stack(ys, 1) - y_seq).abs().max().item() <= 1e-5
    assert (state - final).abs().max().item() <= 1e-5


def test_state_shape_and_flops() -> None:
    gru = RecurrentForecaster(NetConfig(cell="gru", hidden_size=64))
    lstm = RecurrentForecaster(NetConfig(cell="lstm", hidden_size=64))
    assert tuple(gru.zero_state(7).shape) == (7, 1, 1, 64)
    assert tuple(lstm.zero_state(7).shape) == (7, 1, 2, 64)
    assert lstm.flops_per_step() > gru.flops_per_step()


def test_initialisation_is_orthogonal_and_xavier() -> None:
    net = RecurrentForecaster(NetConfig(cell="gru", hidden_size=32, residual=False))
    w = net.rnn.weight_hh_l0.detach()[:32]  # one gate's recurrent matrix
    assert torch.allclose(w @ w.T, torch.eye(32), atol=1e-4)
    assert net.rnn.bias_hh_l0.abs().sum() == 0


def test_bad_config_is_a_clear_error() -> None:
    from models import ConfigError

    with pytest.raises(ConfigError, match="cell"):
        NetConfig(cell="rnn")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="hidden_size"):
        NetConfig(hidden_size=0)


@pytest.mark.parametrize("proj", [0, 16])
@pytest.mark.parametrize("residual", [False, True])
def test_the_one_layer_gru_step_is_the_modules_math_bit_for_bit(proj: int, residual: bool) -> None:
    """``step`` calls the linear maps as ``F.linear`` and returns the cell's output as the state (no
    module dispatch, no copy): bit for bit what the modules and ``torch.gru_cell`` compute."""
    torch.manual_seed(0)
    net = RecurrentForecaster(NetConfig(input_size=3, hidden_size=8, proj_size=proj, residual=residual)).eval()
    nn.init.normal_(net.head.weight)  # a residual head starts at zero
    x, state = torch.randn(5, 3), torch.randn(5, 1, 1, 8)  # [5, 3], [5, 1, 1, 8]
    with torch.inference_mode():
        y, new = net.step(x, state)  # [5, 3], [5, 1, 1, 8]
        inp = torch.tanh(net.proj(x)) if proj else x  # [5, P]
        h = torch.gru_cell(inp, state[:, 0, 0], *net._layers[0])  # [5, 8]
        ref = net.head(h) + (x if residual else 0.0)  # [5, 3]
    assert torch.equal(new, h.view(5, 1, 1, 8)) and torch.equal(y, ref)
