"""Recurrent forecasters that advance many independent streams by one step per call.

Parameters live in a ``torch.nn.GRU``/``torch.nn.LSTM`` so that training can run whole
sequences through the fused kernels, while serving calls :meth:`RecurrentForecaster.step`,
which applies the same weights one time step at a time with ``torch.gru_cell`` /
``torch.lstm_cell`` (the functional cells avoid ``nn.GRUCell``'s per-call module overhead).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, cast, get_args

import torch
import torch.nn.functional as fn
from torch import Tensor, nn

from .errors import ConfigError

__all__ = ["NetConfig", "RecurrentForecaster"]

CellKind = Literal["gru", "lstm"]
# what a stream's decoded vector is and how it becomes the model input (see models.features)
InputKind = Literal["raw", "masked", "ticks"]


@dataclass(frozen=True)
class NetConfig:
    """Shape of a forecaster; stored verbatim in checkpoints.

    ``proj_size`` 0 feeds the (normalised) input straight into the first cell; otherwise a
    ``Linear(input_size, proj_size)`` + tanh projects it first. ``residual`` makes the head
    predict the change from the current input (its first ``output_size`` columns) instead of the
    next value itself. ``output_size`` 0 means ``input_size`` (forecast the whole next input).

    ``inputs`` says what the decoded vector of an event is (:mod:`models.features`): ``raw``
    values (the default), ``masked`` values where NaN means missing (the model sees
    ``[values, mask]``), or ``ticks`` (``[price, size, bid, ask]``, featurised per stream).
    ``channels`` optionally names the value columns for explanations.
    """

    cell: CellKind = "gru"
    input_size: int = 1
    hidden_size: int = 64
    num_layers: int = 1
    proj_size: int = 0
    residual: bool = True
    output_size: int = 0
    inputs: InputKind = "raw"
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))  # JSON gives lists
        if self.cell not in ("gru", "lstm"):
            raise ConfigError(f"cell must be 'gru' or 'lstm', got {self.cell!r}")
        if self.inputs not in get_args(InputKind):
            raise ConfigError(f"inputs must be one of {get_args(InputKind)}, got {self.inputs!r}")
        if not 0 <= self.output_size <= self.input_size:
            raise ConfigError(f"output_size must be in [0, input_size], got {self.output_size}")
        for name in ("input_size", "hidden_size", "num_layers"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.proj_size < 0:
            raise ConfigError(f"proj_size must be >= 0, got {self.proj_size}")

    @property
    def out_size(self) -> int:
        """Width of the forecast (``output_size``, or ``input_size`` when 0)."""
        return self.output_size or self.input_size

    @property
    def state_parts(self) -> int:
        """Tensors of state per layer: 1 for GRU (h), 2 for LSTM (h, c)."""
        return 1 if self.cell == "gru" else 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RecurrentForecaster(nn.Module):
    """Stacked GRU/LSTM forecaster of the next input vector.

    State is one tensor ``[B, num_layers, state_parts, hidden]`` so that a slab of streams
    can be gathered and scattered with one index operation.

    Example:
        >>> net = RecurrentForecaster(NetConfig(cell="gru", input_size=2, hidden_size=8))
        >>> state = net.zero_state(3)                       # [3, 1, 1, 8]
        >>> y, state = net.step(torch.zeros(3, 2), state)   # y: [3, 2]
        >>> tuple(y.shape), tuple(state.shape)
        ((3, 2), (3, 1, 1, 8))
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        f, h, n_layers = config.input_size, config.hidden_size, config.num_layers
        cell_in = config.proj_size or f
        self.proj: nn.Module = nn.Linear(f, config.proj_size) if config.proj_size else nn.Identity()
        rnn_cls = nn.GRU if config.cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(cell_in, h, num_layers=n_layers, batch_first=True)
        self.head = nn.Linear(h, config.out_size)
        self._layers = [
            (
                getattr(self.rnn, f"weight_ih_l{k}"),
                getattr(self.rnn, f"weight_hh_l{k}"),
                getattr(self.rnn, f"bias_ih_l{k}"),
                getattr(self.rnn, f"bias_hh_l{k}"),
            )
            for k in range(n_layers)
        ]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier for input and output maps, orthogonal per gate for recurrent maps."""
        h = self.config.hidden_size
        for w_ih, w_hh, b_ih, b_hh in self._layers:
            gates = w_ih.shape[0] // h
            for g in range(gates):
                nn.init.xavier_uniform_(w_ih.data[g * h : (g + 1) * h])
                nn.init.orthogonal_(w_hh.data[g * h : (g + 1) * h])
            nn.init.zeros_(b_ih)
            nn.init.zeros_(b_hh)
            if self.config.cell == "lstm":
                # forget-gate bias 1: remember by default early in training
                b_ih.data[h : 2 * h] = 1.0
        for lin in (self.proj, self.head):
            if isinstance(lin, nn.Linear):
                nn.init.xavier_uniform_(lin.weight)
                nn.init.zeros_(lin.bias)
        if self.config.residual:
            # start as "next = current": the head learns corrections
            nn.init.zeros_(self.head.weight)

    def zero_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        c = self.config
        return torch.zeros(batch, c.num_layers, c.state_parts, c.hidden_size, device=device)  # [B, L, K, H]

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Advance every row by one time step: ``x[B, F]``, ``state[B, L, K, H]``."""
        # the linear maps as F.linear on the parameters, not through nn.Module.__call__: the same
        # kernel (bitwise), without ~5 µs of module dispatch each, at every wave (issue 17)
        inp = x
        if self.config.proj_size:
            proj = cast(nn.Linear, self.proj)
            inp = fn.linear(x, proj.weight, proj.bias).tanh_()  # [B, P]
        if self.config.cell == "gru" and len(self._layers) == 1:  # the common case: the new state is the cell's output
            # torch's fused cell: on the CPU faster than the gates as separate ops at every batch size
            # measured (docs/benchmarks.md, "The GRU cell, again"), and the same numbers at any batch size
            inp = torch.gru_cell(inp, state[:, 0, 0], *self._layers[0])  # [B, H]
            new = inp.view(inp.shape[0], 1, 1, inp.shape[1])  # [B, 1, 1, H]
        elif self.config.cell == "gru":
            new = torch.empty_like(state)  # [B, L, K, H]
            for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(self._layers):
                inp = torch.gru_cell(inp, state[:, k, 0], w_ih, w_hh, b_ih, b_hh)  # [B, H]
                new[:, k, 0] = inp  # [B, H]
        else:
            new = torch.empty_like(state)  # [B, L, K, H]
            for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(self._layers):
                hc = (state[:, k, 0], state[:, k, 1])  # 2 x [B, H]
                inp, c = torch.lstm_cell(inp, hc, w_ih, w_hh, b_ih, b_hh)  # [B, H], [B, H]
                new[:, k, 0] = inp  # [B, H]
                new[:, k, 1] = c  # [B, H]
        y = fn.linear(inp, self.head.weight, self.head.bias)  # [B, O]
        if self.config.residual:
            y = y + x[:, : y.shape[1]]  # [B, O]
        return y, new

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Whole sequences ``x[B, T, F]`` (training); returns ``y[B, T, F]`` and the final state."""
        b = x.shape[0]
        if state is None:
            state = self.zero_state(b, x.device)  # [B, L, K, H]
        inp = self.proj(x)  # [B, T, P]
        if isinstance(self.proj, nn.Linear):
            inp = torch.tanh(inp)  # [B, T, P]
        h0 = state[:, :, 0].transpose(0, 1).contiguous()  # [L, B, H]
        if self.config.cell == "gru":
            out, hn = self.rnn(inp, h0)  # [B, T, H], [L, B, H]
            final = hn.transpose(0, 1).unsqueeze(2)  # [B, L, 1, H]
        else:
            c0 = state[:, :, 1].transpose(0, 1).contiguous()  # [L, B, H]
            out, (hn, cn) = self.rnn(inp, (h0, c0))  # [B, T, H], 2 x [L, B, H]
            final = torch.stack((hn, cn), dim=2).transpose(0, 1)  # [B, L, 2, H]
        y = self.head(out)  # [B, T, O]
        if self.config.residual:
            y = y + x[..., : y.shape[-1]]  # [B, T, O]
        return y, final

    def flops_per_step(self) -> int:
        """Multiply-adds x2 of one stream-step (matrix products only)."""
        c = self.config
        gates = 3 if c.cell == "gru" else 4
        cell_in = c.proj_size or c.input_size
        total = 2 * c.input_size * c.proj_size if c.proj_size else 0
        for k in range(c.num_layers):
            i = cell_in if k == 0 else c.hidden_size
            total += 2 * gates * c.hidden_size * (i + c.hidden_size)
        return total + 2 * c.hidden_size * c.out_size
