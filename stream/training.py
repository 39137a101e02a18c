"""Training data from the simulator, decoded by the worker's own codec.

A source's checkpoint must see in training exactly the features the worker feeds it, so series
are built by running simulated Kafka payloads through :func:`stream.codec.decode_batch`.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .codec import decode_batch
from .simulator import Simulator

__all__ = ["N_FEATURES", "simulated_series"]

N_FEATURES = {"sensors": 1, "speech": 8, "ticks": 2}


def simulated_series(source: str, n_streams: int, rounds: int, seed: int = 0) -> list[np.ndarray]:
    """One ``[T, F]`` feature series per simulated stream (no injected anomalies).

    Example:
        >>> [s.shape for s in simulated_series("ticks", n_streams=2, rounds=3)][0][1]
        2
    """
    sim = Simulator(source, n_streams=n_streams, seed=seed)
    t0 = 1_700_000_000.0
    records = []
    for k in range(rounds):
        for e in sim.round(t0 + k):
            rec = SimpleNamespace(topic=source, partition=0, offset=0, key=e.key(), value=e.value(), timestamp=0)
            records.append(rec)
    dec = decode_batch(source, records, n_features=N_FEATURES[source], now=t0 + rounds + 1.0)
    if dec.errors:
        raise RuntimeError(f"simulator produced undecodable records: {dec.errors[:3]}")
    by_stream: dict[str, list[int]] = {}
    for i, sid in enumerate(dec.stream_ids):
        by_stream.setdefault(sid, []).append(i)
    return [dec.x[idx] for idx in by_stream.values()]
