"""Adding a sixth source is one new file in ``stream/sources/`` plus its checkpoint: nothing else.

The test copies the project's ``stream/`` package as it is, adds the file below (a tiny ``pressure``
source) and, in a fresh interpreter, finds the source in the registry and the settings, simulates
it, decodes it on both paths and runs it through the worker's own :class:`SourcePipeline` into
predictions; the same file passes the contract of ``tests/test_sources_contract.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRESSURE = '''
"""The ``pressure`` source (an example): one pipe pressure in kPa per event.

Wire format (topic ``pressure-readings``): ``{"stream": "pipe-1", "ts": ..., "kpa": float}``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from ..codec.decode import BadInput, number
from .base import Event, Round, Simulation, Source, Wire


class PressureMsg(msgspec.Struct, gc=False):
    stream: str
    ts: float | str
    kpa: float


def careful(obj: dict[str, Any], n: int) -> list[float]:
    kpa = number(obj, "kpa")
    assert kpa is not None
    if kpa < 0:
        raise BadInput("out_of_range", f"kpa must be >= 0, got {kpa}")
    return [kpa]


def fast(msgs: list[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[m.kpa] for m in msgs], np.float64).reshape(len(msgs), 1)  # [m, 1]
    return x, np.isfinite(x[:, 0]) & (x[:, 0] >= 0)


class PressureSim(Simulation):
    prefix = "pipe"
    anomaly = "surge"

    def __init__(self, n: int, rng: np.random.Generator, seed: int) -> None:
        self.n, self.base = n, rng.uniform(200, 400, n)  # [n]

    def round(self, r: Round) -> list[Event]:
        v = self.base + 5 * np.sin(r.k / 10) + r.rng.standard_normal(self.n) + np.where(r.active, 80.0, 0.0)  # [n]
        return [Event(s, r.t, {"stream": s, "ts": r.t, "kpa": round(float(v[i]), 3)}, bool(r.active[i]))
                for i, s in enumerate(r.streams)]


SOURCE = Source("pressure-readings", Wire(PressureMsg, careful, fast), PressureSim, n_features=1)
'''

CHECK = """
import json, sys, time
from types import SimpleNamespace

from models import NetConfig, RecurrentForecaster, ScoringConfig
from models.checkpoint import save_checkpoint
import stream.sources
from stream.codec import decode_batch
from stream.codec.decode import _decode_careful
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings
from stream.sources import SOURCES
from stream.sources.simulator import Simulator

assert stream.sources.__file__.startswith(sys.argv[1]), stream.sources.__file__  # the copy, not the project
src = SOURCES["pressure"]
save_checkpoint(sys.argv[2], RecurrentForecaster(NetConfig(hidden_size=8)), ScoringConfig(warmup=0), {"model_id": "p"})
s = Settings(sources=("pressure",))
sim = Simulator("pressure", 5, seed=1)
sim.inject(1, 2, 4)
recs = [SimpleNamespace(topic=s.topic("pressure"), partition=0, offset=i, key=e.key(), value=e.value(), timestamp=0)
        for i, e in enumerate(e for k in range(8) for e in sim.round(1_700_000_000.0 + k))]
recs.append(SimpleNamespace(topic="t", partition=0, offset=99, key=b"pipe-0000", timestamp=0,
                            value=b'{"stream": "pipe-0000", "ts": 1, "kpa": -3}'))
fast = decode_batch(src.wire, recs, n_features=1, now=time.time())
careful = _decode_careful(src.wire, recs, n_features=1, now=time.time())
assert fast.index.tolist() == careful.index.tolist() and fast.errors == careful.errors
pipe = SourcePipeline("pressure", build_runner(s, "pressure"), s)
out = pipe.process(recs)
print(json.dumps({
    "sources": sorted(SOURCES), "topic": s.topic("pressure"), "checkpoint": str(s.checkpoint("pressure")),
    "predictions": out.n_predictions, "dead": out.n_dead, "reasons": [e[1] for e in fast.errors],
    "topics": sorted({o.topic for o in out.outputs}),
}))
"""


def test_a_sixth_source_is_one_new_file(tmp_path: Path) -> None:
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "stream", copy / "stream", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "stream" / "sources" / "pressure.py").write_text(textwrap.dedent(PRESSURE))
    ckpt = tmp_path / "pressure.pt"
    env = {
        **os.environ,
        "PYTHONPATH": f"{copy}{os.pathsep}{ROOT}",
        "SEQSTREAM_CHECKPOINT_PRESSURE": str(ckpt),  # its checkpoint: the one other thing a source needs
        "SEQSTREAM_STATE_ENABLED": "false",
    }
    r = subprocess.run(
        [sys.executable, "-c", CHECK, str(copy), str(ckpt)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert "pressure" in got["sources"] and {"sensors", "speech", "ticks", "audio", "machines"} <= set(got["sources"])
    assert got["topic"] == "pressure-readings"
    assert got["checkpoint"] == str(ckpt)
    assert got["predictions"] == 40 and got["dead"] == 1
    assert got["reasons"] == ["out_of_range"]
    assert got["topics"] == ["dead-letter", "predictions"]

    # the same file passes the sources' contract suite, run on the copy
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests/test_sources_contract.py"),
         "-k", "pressure and not fit_the_model", "--rootdir", str(tmp_path), "--import-mode=importlib"],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0 and "3 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
