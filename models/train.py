"""Offline training of forecaster checkpoints.

Inputs are normalised with the serving path's own online normaliser (``Scorer.pre``), so the
model sees in training exactly what it will see when streaming. Training uses truncated
backpropagation through time on windows cut from each series, gradient clipping, Adam, early
stopping on a held-out tail of every series, and fixed seeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import save_checkpoint
from .errors import ConfigError, InputError
from .nets import NetConfig, RecurrentForecaster
from .runner import make_features
from .scoring import Scorer
from .scoring_config import ScoringConfig

__all__ = ["TrainConfig", "featurise_series", "normalise_series", "synthetic_series", "train"]


@dataclass(frozen=True)
class TrainConfig:
    window: int = 128
    batch_size: int = 64
    epochs: int = 30
    steps_per_epoch: int = 100
    lr: float = 3e-3
    clip: float = 1.0
    patience: int = 5
    val_fraction: float = 0.15
    seed: int = 0


def normalise_series(series: Sequence[np.ndarray], scoring: ScoringConfig) -> list[np.ndarray]:
    """Run every series ``[T, F]`` through the serving normaliser, all series in one batch per step."""
    f = series[0].shape[1]
    scorer = Scorer(scoring, f)
    t_max = max(len(s) for s in series)
    xs = np.full((len(series), t_max, f), np.nan, np.float32)
    for i, s in enumerate(series):
        xs[i, : len(s)] = s
    x = torch.from_numpy(xs)  # [S, T, F]
    aux = scorer.init_row().expand(len(series), -1).clone()  # [S, A]
    out = torch.zeros_like(x)  # [S, T, F]
    with torch.inference_mode():
        for t in range(t_max):
            live = torch.isfinite(x[:, t]).all(1)  # [S]
            idx = live.nonzero().squeeze(1)  # [s]
            sub = aux[idx]  # [s, A]
            xn, _ = scorer.pre(sub, x[idx, t])  # [s, F]
            aux[idx] = sub
            out[idx, t] = xn
    return [out[i, : len(s)].numpy() for i, s in enumerate(series)]


@torch.inference_mode()
def featurise_series(
    series: Sequence[np.ndarray],
    net: NetConfig,
    scoring: ScoringConfig,
    times: Sequence[np.ndarray] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Model inputs ``[T, I]`` and targets ``[T, O]`` of each raw series ``[T, R]`` through the
    serving featuriser (:meth:`models.features.Features.to_inputs`), all series in one batch per step.

    ``times[i]`` (event times of series ``i``) gives the featuriser the time since the previous
    event where it uses one (ticks). Targets are NaN where unknown (missing values).
    """
    # the context channels (season/profile/shift) score; they do not change the model's input
    feats = make_features(net, replace(scoring, season_buckets=0, profile_buckets=0, shift_short=0))
    r = feats.raw_size
    if any(s.ndim != 2 or s.shape[1] != r for s in series):
        raise ConfigError(f"every series must be [T, {r}] for this model (its decoded input width)")
    lengths = np.array([len(s) for s in series])
    t_max = int(lengths.max())
    xs = np.full((len(series), t_max, r), np.nan, np.float32)
    dts = np.full((len(series), t_max), np.inf, np.float32)
    for i, s in enumerate(series):
        xs[i, : len(s)] = s
        if times is not None and len(s) > 1:
            dts[i, 1 : len(s)] = np.diff(np.asarray(times[i], np.float64))
    x = torch.from_numpy(xs)  # [S, T, R]
    dt = torch.from_numpy(dts) if feats.needs_dt else None  # [S, T]
    aux = feats.init_row().expand(len(series), -1).clone()  # [S, A]
    inp = torch.zeros(len(series), t_max, net.input_size)  # [S, T, I]
    tgt = torch.full((len(series), t_max, net.out_size), float("nan"))  # [S, T, O]
    for t in range(t_max):
        idx = torch.from_numpy(np.flatnonzero(lengths > t))  # [s]
        sub = aux[idx]  # [s, A]
        i_t, _, y_t, _ = feats.to_inputs(sub, x[idx, t], dt[idx, t] if dt is not None else None)  # [s, I], [s, O]
        aux[idx] = sub
        inp[idx, t] = i_t
        tgt[idx, t] = y_t
    return [(inp[i, :n].numpy(), tgt[i, :n].numpy()) for i, n in enumerate(lengths.tolist())]


def synthetic_series(n: int, length: int = 4000, seed: int = 0) -> list[np.ndarray]:
    """Univariate sensor-like series: seasonality, trends, noise, level shifts, random walks."""
    rng = np.random.default_rng(seed)
    out = []
    t = np.arange(length, dtype=np.float64)
    for _ in range(n):
        kind = rng.integers(0, 4)
        level = rng.normal(0, 50)
        scale = 10 ** rng.uniform(-1, 3)
        noise = rng.uniform(0.01, 0.5)
        if kind == 0:  # daily-like seasonality
            period = rng.choice([24, 48, 96, 144, 288])
            y = np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3)) + 0.3 * np.sin(4 * np.pi * t / period)
        elif kind == 1:  # random walk
            y = np.cumsum(rng.normal(0, 0.1, length))
        elif kind == 2:  # AR(1) around a slow trend
            y = np.zeros(length)
            phi = rng.uniform(0.5, 0.99)
            for i in range(1, length):
                y[i] = phi * y[i - 1] + rng.normal(0, 0.3)
            y += t * rng.normal(0, 1e-3)
        else:  # piecewise constant with level shifts
            y = np.repeat(rng.normal(0, 1, length // 200 + 1), 200)[:length]
        y = y + rng.normal(0, noise, length)
        out.append(((level + scale * y)[:, None]).astype(np.float32))
    return out


def _windows(series: list[np.ndarray], window: int) -> list[tuple[int, int]]:
    return [
        (i, s)
        for i, x in enumerate(series)
        if len(x) > window
        for s in range(0, len(x) - window - 1 + 1, max(1, window // 2))
    ]


def train(
    series: Sequence[np.ndarray],
    net: NetConfig,
    scoring: ScoringConfig,
    cfg: TrainConfig,
    progress: Callable[[int, float, float], None] | None = None,
    times: Sequence[np.ndarray] | None = None,
) -> tuple[RecurrentForecaster, dict[str, Any]]:
    """Fit a forecaster to predict each next target (normalised, see :func:`featurise_series`)
    from the model inputs so far; returns (model, metadata). ``times``: event times per series."""
    if not series:
        raise InputError("no training series; pass CSV files or --synthetic N")
    width = make_features(net, scoring).raw_size
    if any(s.ndim != 2 or s.shape[1] != width for s in series):
        raise ConfigError(f"every series must be [T, {width}] to match --features")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    prepared = featurise_series(series, net, scoring, times)
    train_s, val_s = [], []
    for inp, tgt in prepared:
        x = np.concatenate([inp, tgt], 1)  # [T, I + O]
        cut = int(len(x) * (1 - cfg.val_fraction))
        if cut > cfg.window + 1:
            train_s.append(x[:cut])
            val_s.append(x[cut - 1 :])
    if not train_s:
        raise InputError(f"series too short for window {cfg.window}; use a smaller --window")
    train_w, val_w = _windows(train_s, cfg.window), _windows(val_s, cfg.window)
    if not val_w:  # held-out tails too short for a window: validate on the training windows
        val_s, val_w = train_s, train_w

    n_in = net.input_size

    def batch(src: list[np.ndarray], ws: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = np.stack([src[i][s : s + cfg.window + 1] for i, s in ws])  # [B, W+1, I+O]
        xb = torch.from_numpy(chunk)  # [B, W+1, I+O]
        return xb[:, :-1, :n_in], xb[:, 1:, n_in:]

    model = RecurrentForecaster(net)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    smooth = nn.SmoothL1Loss(beta=0.5)
    burn = min(16, cfg.window // 4)  # ignore the first steps of each window: the state is cold there

    def loss_fn(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        known = torch.isfinite(y)  # [B, W, O] missing targets do not count
        return smooth(pred[known], y[known]) if not bool(known.all()) else smooth(pred, y)

    best, best_state, bad, history = math.inf, None, 0, []
    t0 = time.monotonic()
    for epoch in range(cfg.epochs):
        model.train()
        tr = 0.0
        for _ in range(cfg.steps_per_epoch):
            pick = rng.integers(0, len(train_w), cfg.batch_size)
            xb, yb = batch(train_s, [train_w[k] for k in pick])
            pred, _ = model(xb)  # [B, W, F]
            loss = loss_fn(pred[:, burn:], yb[:, burn:])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            tr += loss.item()
        model.eval()
        with torch.no_grad():
            vl, nv = 0.0, 0
            for k in range(0, len(val_w), 256):
                xb, yb = batch(val_s, val_w[k : k + 256])
                pred, _ = model(xb)  # [B, W, F]
                vl += loss_fn(pred[:, burn:], yb[:, burn:]).item() * len(xb)
                nv += len(xb)
        vl /= max(nv, 1)
        tr /= cfg.steps_per_epoch
        history.append({"epoch": epoch, "train_loss": tr, "val_loss": vl})
        if progress:
            progress(epoch, tr, vl)
        if vl < best - 1e-5:
            best, bad = vl, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    meta = {
        "train_config": asdict(cfg),
        "epochs_run": len(history),
        "best_val_loss": best,
        "history": history,
        "n_series": len(series),
        "n_events": int(sum(len(s) for s in series)),
        "seconds": round(time.monotonic() - t0, 1),
        "torch": torch.__version__,
    }
    return model.eval(), meta


def load_training_csvs(paths: Sequence[str | Path], values: Sequence[str] | None = None) -> list[np.ndarray]:
    """Value columns of CSV files (directories are searched for *.csv); one series per file/stream."""
    from .replay import iter_csv_files, read_csv

    out: list[np.ndarray] = []
    for p in paths:
        for f in iter_csv_files(Path(p)):
            table = read_csv(f, values=values)
            for sid in dict.fromkeys(table.stream_ids):
                rows = table.ok & np.array([s == sid for s in table.stream_ids])
                if rows.sum() > 0:
                    out.append(table.x[rows])
    return out


def run_training(
    output: str | Path,
    net: NetConfig,
    scoring: ScoringConfig,
    cfg: TrainConfig,
    csvs: Sequence[str] = (),
    synthetic: int = 0,
    values: Sequence[str] | None = None,
    model_id: str | None = None,
    progress: Callable[[int, float, float], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    series = load_training_csvs(csvs, values) if csvs else []
    if synthetic:
        if net.input_size != 1 or net.inputs != "raw":
            raise ConfigError("--synthetic generates univariate series; use --features 1")
        series += synthetic_series(synthetic, seed=cfg.seed)
    model, meta = train(series, net, scoring, cfg, progress)
    meta["data"] = {"csv": [str(c) for c in csvs], "synthetic_series": synthetic}
    meta["model_id"] = model_id or Path(output).stem
    path = save_checkpoint(output, model, scoring, meta)
    return path, meta
