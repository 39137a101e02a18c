"""``seqstream demo`` as a user runs it: embedded broker, worker, simulator; alerts; exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_demo_prints_alerts_and_exits_cleanly(checkpoints: dict[str, Path]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQSTREAM_")}
    # the lead's bundled checkpoints when present, else the test ones
    for source, path in checkpoints.items():
        from stream.settings import Settings

        try:
            Settings().checkpoint(source)
        except Exception:
            env[f"SEQSTREAM_CHECKPOINT_{source.upper()}"] = str(path)
    proc = subprocess.run(
        [sys.executable, "-m", "stream.cli", "demo", "--seconds", "40"],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    out = proc.stdout
    print(out[-4000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "metrics at http://" in out
    assert "ALERT open" in out, "no alert within the demo"
    assert "injected anomaly ✓" in out
    assert "demo: done" in out
