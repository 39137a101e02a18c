"""Run a ``seqstream worker`` in a child process and read its ``/metrics`` (demo and tests).

Example:
    >>> w = WorkerProcess({"SEQSTREAM_BROKER_URL": "kafka://127.0.0.1:9092"}, web_port=16066)
    >>> w.metrics_url
    'http://127.0.0.1:16066/metrics'
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from models.errors import SeqstreamError
from stream.tools.brokers import free_port

__all__ = ["WorkerProcess", "free_port", "metric_quantile", "metric_sum", "parse_metrics"]

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {``name{labels}``: value} (enough for summaries and tests)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m:
            try:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
            except ValueError:
                continue
    return out


def metric_sum(metrics: dict[str, float], name: str) -> float:
    """Sum of a metric over all its label sets."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


def metric_quantile(now: dict[str, float], prev: dict[str, float], name: str, q: float) -> float | None:
    """The upper bound of the bucket that holds quantile ``q`` of a histogram's increase between two
    scrapes ``prev`` and ``now`` (all label sets summed); None when nothing was observed."""
    buckets: dict[float, float] = {}
    for k, v in now.items():
        if k.startswith(name + "_bucket{"):
            le = k.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + v - prev.get(k, 0.0)
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    for b in bounds:
        if buckets[b] >= q * total:
            return b
    return bounds[-1]


class WorkerProcess:
    """A ``python -m stream.cli worker`` child with the given environment; logs to a file."""

    def __init__(
        self, env: dict[str, str], web_port: int | None = None, log_path: Path | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.web_port = web_port or free_port(host)
        self.host = host
        self.env = {**os.environ, **env, "SEQSTREAM_WEB_PORT": str(self.web_port), "SEQSTREAM_WEB_HOST": host}
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="seqstream-worker-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.web_port}/metrics"

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self, timeout: float = 2.0) -> dict[str, float]:
        with urllib.request.urlopen(self.metrics_url, timeout=timeout) as r:
            return parse_metrics(r.read().decode())

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Wait until the worker has input partitions assigned; returns the seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.alive():
                raise SeqstreamError(f"worker exited with {self.proc and self.proc.returncode}; see {self.log_path}")
            try:
                if self.metrics(timeout=1.0).get("seqstream_assigned_partitions", 0) > 0:
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.25)
        raise SeqstreamError(f"worker not ready within {timeout} s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s (above the worker's own bound, SEQSTREAM_STOP_TIMEOUT_S: 20 s)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""
