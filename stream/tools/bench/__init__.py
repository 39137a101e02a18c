"""``seqstream bench``: end-to-end throughput, latency, step and memory benchmarks in one run."""

from __future__ import annotations

from .run import _engine, _settings, cmd, main, register_args

__all__ = ["cmd", "main", "register_args"]
__all__ += ["_engine", "_settings"]  # bench/pipeline_bench.py and bench/resident_bound.py build on them
