"""``seqstream demo`` as a user runs it: embedded broker, worker, simulator; alerts; exit 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.parametrize("busy", [False, True], ids=["alone", "beside-a-busy-process"])
def test_demo_prints_alerts_and_exits_cleanly(checkpoints: dict[str, Path], busy: bool) -> None:
    """The demo as a user runs it; ``busy``: with another process spinning on one core the whole time
    (the demo's rates leave half the machine free, issue 17), it still alerts every injected anomaly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQSTREAM_")}
    # the lead's bundled checkpoints when present, else the test ones
    for source, path in checkpoints.items():
        from stream.settings import Settings

        try:
            Settings().checkpoint(source)
        except Exception:
            env[f"SEQSTREAM_CHECKPOINT_{source.upper()}"] = str(path)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "stream.cli", "demo", "--seconds", "40"],
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    out = proc.stdout
    print(out[-4000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "metrics at http://" in out
    assert "ALERT open" in out, "no alert within the demo"
    assert "injected anomaly ✓" in out
    assert "demo: done" in out
    found = re.search(r"(\d+)/(\d+) injected anomalies", out)
    assert found and found[1] == found[2] and int(found[2]) > 0, "an injected anomaly went unalerted"
