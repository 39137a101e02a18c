"""Training data from the simulator, decoded by the worker's own codec.

A source's checkpoint must see in training exactly the features the worker feeds it, so series
are built by running simulated Kafka payloads through :func:`stream.codec.decode_batch`; the
featurisation that needs per-stream state (ticks, masked values) then runs in
:func:`models.train.featurise_series`, the serving code path.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from models.ticks import N_TICK_FEATURES, N_TICK_TARGETS, RAW_TICK

from .codec import decode_batch
from .simulator import MACHINE_CHANNELS, Simulator

__all__ = ["N_FEATURES", "net_shape", "simulated_data", "simulated_series"]

# decoded vector width per source (what the codec produces for the source's default model)
N_FEATURES = {"sensors": 1, "speech": 8, "ticks": RAW_TICK, "machines": len(MACHINE_CHANNELS)}


def net_shape(source: str) -> dict[str, Any]:
    """``NetConfig`` fields of a source's model besides cell and sizes.

    Example:
        >>> net_shape("ticks")["inputs"], net_shape("machines")["input_size"]
        ('ticks', 8)
    """
    if source == "ticks":
        return {"input_size": N_TICK_FEATURES, "output_size": N_TICK_TARGETS, "inputs": "ticks", "residual": False}
    if source == "machines":
        f = len(MACHINE_CHANNELS)
        return {"input_size": 2 * f, "output_size": f, "inputs": "masked", "channels": MACHINE_CHANNELS}
    return {"input_size": N_FEATURES[source]}


def simulated_data(
    source: str, n_streams: int, rounds: int, seed: int = 0, round_s: float = 1.0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One ``[T, F]`` decoded series and its ``[T]`` event times per simulated stream (no anomalies)."""
    sim = Simulator(source, n_streams=n_streams, seed=seed)
    t0 = 1_700_000_000.0
    records = []
    for k in range(rounds):
        for e in sim.round(t0 + k * round_s):
            rec = SimpleNamespace(topic=source, partition=0, offset=0, key=e.key(), value=e.value(), timestamp=0)
            records.append(rec)
    dec = decode_batch(source, records, n_features=N_FEATURES[source], now=t0 + rounds * round_s + 1.0)
    if dec.errors:
        raise RuntimeError(f"simulator produced undecodable records: {dec.errors[:3]}")
    by_stream: dict[str, list[int]] = {}
    for i, sid in enumerate(dec.stream_ids):
        by_stream.setdefault(sid, []).append(i)
    return [dec.x[idx] for idx in by_stream.values()], [dec.ts[idx] for idx in by_stream.values()]


def simulated_series(source: str, n_streams: int, rounds: int, seed: int = 0) -> list[np.ndarray]:
    """One ``[T, F]`` feature series per simulated stream (no injected anomalies).

    Example:
        >>> [s.shape for s in simulated_series("ticks", n_streams=2, rounds=3)][0][1]
        4
    """
    return simulated_data(source, n_streams, rounds, seed)[0]
