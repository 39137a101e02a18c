"""Detection quality on labelled simulated events: ``seqstream evaluate ticks|machines``.

The simulator's streams (with injected, labelled events) are decoded by the worker's codec and
run through a :class:`~models.runner.Runner` with the source's checkpoint, one micro-batch per
simulator round, exactly as the worker would. Alerts are matched to events per stream:

* ticks: an ``open`` alert of kind K on a symbol is a true alert when the symbol is inside an
  injected event of kind K (from its first tick to ``grace`` ticks after its last); an event is
  detected by its first such alert, and the latency is counted in the symbol's ticks from the
  event's first tick (0: the alert came with the first anomalous tick).
* machines: an ``open`` alert is true inside a fault (``grace`` readings after it included); the
  table also says how often the alert named the faulty channel.

Some streams get no events at all ("quiet"); their alerts are reported separately.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from models import Batch, Runner
from stream.codec import decode_batch
from stream.sources import SOURCES, Anomaly, Event
from stream.sources.simulator import Simulator

__all__ = ["DetectionReport", "KindQuality", "evaluate_source"]


@dataclass
class KindQuality:
    """Counts of one event kind."""

    events: int = 0
    detected: int = 0
    alerts: int = 0
    true_alerts: int = 0
    latencies: list[int] = field(default_factory=list)
    named: int = 0  # machines: detected faults whose first alert named the faulty channel

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else float("nan")

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else float("nan")


@dataclass
class DetectionReport:
    """Per-kind quality plus the run's size; :meth:`table` is the Markdown table of docs/accuracy.md."""

    source: str
    kinds: dict[str, KindQuality]
    streams: int
    quiet_streams: int
    quiet_alerts: int
    events_in: int
    seconds: float
    model_id: str
    forecast: dict[str, float] = field(default_factory=dict)  # ticks: the GRU's forecasts vs baselines

    def table(self) -> str:
        unit = "ticks" if self.source == "ticks" else "readings"
        head = f"| kind | events | detected | recall | alerts | precision | latency median ({unit}) | latency p90 |"
        lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
        if self.source == "machines":
            lines[0] += " alert names the faulty channel |"
            lines[1] += "---:|"
        for kind, q in self.kinds.items():
            lat = np.asarray(q.latencies, float)
            med = f"{np.median(lat):.0f}" if len(lat) else "-"
            p90 = f"{np.percentile(lat, 90):.0f}" if len(lat) else "-"
            row = f"| {kind} | {q.events} | {q.detected} | {q.recall:.3f} | {q.alerts} | {q.precision:.3f} "
            row += f"| {med} | {p90} |"
            if self.source == "machines":
                row += f" {q.named}/{q.detected} |"
            lines.append(row)
        return "\n".join(lines)

    def summary(self) -> str:
        s = (
            f"{self.source}: {self.streams} streams ({self.quiet_streams} without events: {self.quiet_alerts} alerts), "
            f"{self.events_in:,} events in {self.seconds:.1f} s, model {self.model_id}"
        )
        f = self.forecast
        if f:
            s += (
                f"\nforecasts on {f['ticks']:,.0f} normal ticks: next return R^2 {f['return_r2']:.3f} (vs 0 for a zero "
                f"forecast); next |return| MAE {f['absret_mae_gru']:.3g} (GRU) vs {f['absret_mae_ewma']:.3g} (EWMA "
                f"realised volatility)"
            )
        return s


def _plan(sim: Simulator, kinds: tuple[str, ...], rounds: int, quiet: float, gap: int, warm: int) -> set[int]:
    """Events on every non-quiet stream, kinds in turn, ``gap`` rounds apart after ``warm`` rounds."""
    rng = np.random.default_rng(sim.seed + 1)
    quiet_ids = set(rng.choice(sim.n_streams, int(quiet * sim.n_streams), replace=False).tolist())
    j = 0
    for i in range(sim.n_streams):
        if i in quiet_ids:
            continue
        r = warm + int(rng.integers(0, gap))
        while r < rounds - gap // 2:
            sim.plan(i, r, kinds[j % len(kinds)], length=int(rng.integers(20, 41)))
            j += 1
            r += gap + int(rng.integers(0, gap // 2))
    return quiet_ids


def evaluate_source(
    source: str,
    checkpoint: str | Path | None,
    *,
    streams: int = 100,
    rounds: int = 2000,
    seed: int = 0,
    quiet: float = 0.25,
    gap: int = 300,
    warm: int = 300,
    grace: int = 5,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> DetectionReport:
    """Simulate, run and score; see the module docstring."""
    if source not in ("ticks", "machines"):
        raise ValueError(f"evaluate supports ticks and machines, not {source!r}")
    from models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    runner = Runner(ckpt.model, ckpt.scoring, device=device, model_id=ckpt.model_id, capacity=streams)
    sim = Simulator(source, streams, seed=seed)
    sim_cls = SOURCES[source].simulation
    kinds = sim_cls.kinds or (sim_cls.anomaly,)
    quiet_ids = _plan(sim, kinds, rounds, quiet, gap, warm)
    quiet_names = {sim.streams[i] for i in quiet_ids}
    # per stream: the kind of each accepted event (None: normal) and the alerts (event index, kind, channel)
    seq: dict[str, list[str | None]] = defaultdict(list)
    alerts: dict[str, list[tuple[int, str, str | None]]] = defaultdict(list)
    fc: dict[str, list[tuple[float, float, float]]] = defaultdict(list)  # ticks: price, r_hat, sigma_hat
    t0, n_in = time.perf_counter(), 0
    dt = 0.5 if source == "ticks" else 1.0
    for k in range(rounds):
        events: list[Event] = sim.round(1_700_000_000.0 + k * dt)
        recs = [
            SimpleNamespace(topic=source, partition=0, offset=i, key=e.key(), value=e.value(), timestamp=0)
            for i, e in enumerate(events)
        ]
        dec = decode_batch(SOURCES[source].wire, recs, n_features=runner.n_features, now=1_800_000_000.0)
        if dec.errors:
            raise RuntimeError(f"simulator produced undecodable records: {dec.errors[:3]}")
        res = runner.process(Batch(dec.stream_ids, dec.ts, dec.x))
        pos: dict[int, int] = {}
        for j, sid in enumerate(dec.stream_ids):
            if res.accepted[j]:
                pos[j] = len(seq[sid])
                seq[sid].append(events[int(dec.index[j])].kind)
                if res.forecast is not None:
                    fc[sid].append((float(dec.x[j, 0]), *res.forecast[j].tolist()))
        for al in res.alerts:
            if al.state == "open" and al.index in pos:
                alerts[al.stream_id].append((pos[al.index], al.kind or "anomaly", al.channel))
        n_in += len(events)
        if progress is not None:
            progress(k)
    seconds = time.perf_counter() - t0
    by_kind = {k: KindQuality() for k in kinds}
    labels: dict[str, list[Anomaly]] = defaultdict(list)
    for a in sim.anomalies:
        labels[a.stream].append(a)
    for sid, kinds_seq in seq.items():
        spans = _spans(kinds_seq)
        planned = sorted(labels.get(sid, []), key=lambda a: a.start_round)  # one per span, in order
        # machines alerts are kind "anomaly": they count for the (only) fault kind
        mine = [(i, k if source == "ticks" else kinds[0], ch) for i, k, ch in alerts.get(sid, [])]
        for i, kind, _ in mine:
            q = by_kind.get(kind)
            if q is not None:
                q.alerts += 1
                q.true_alerts += any(s[0] == kind and s[1] <= i <= s[2] + grace for s in spans)
        for n_span, (kind, a0, a1) in enumerate(spans):
            q = by_kind[kind]
            q.events += 1
            first = next(((i, ch) for i, k, ch in mine if k == kind and a0 <= i <= a1 + grace), None)
            if first is not None:
                q.detected += 1
                q.latencies.append(first[0] - a0)
                if source == "machines" and n_span < len(planned):
                    q.named += int(first[1] == planned[n_span].channel)
    quiet_alerts = sum(len(alerts.get(s, [])) for s in quiet_names)
    rep = DetectionReport(source, by_kind, streams, len(quiet_ids), quiet_alerts, n_in, seconds, ckpt.model_id)
    if fc:
        rep.forecast = _forecast_quality(fc, seq)
    return rep


def _forecast_quality(
    fc: dict[str, list[tuple[float, float, float]]], seq: dict[str, list[str | None]], warm: int = 100
) -> dict[str, float]:
    """Next-tick return and |return| forecasts of the GRU vs a zero forecast and an EWMA (50 ticks)
    realised volatility, on ticks outside injected events and their next 50 ticks, after ``warm``."""
    sse = sse0 = mae_g = mae_e = n = 0.0
    k = math.sqrt(2.0 / math.pi)  # E|r| = sigma sqrt(2/pi) for a normal return
    for sid, rows in fc.items():
        price = np.array([r[0] for r in rows])  # [T]
        r_hat = np.array([r[1] for r in rows])  # [T] forecast of the next return
        s_hat = np.array([r[2] for r in rows])  # [T] forecast of the next volatility
        ret = np.diff(np.log(price))  # [T-1] ret[t] = return of tick t+1
        var, ewma = 0.0, np.zeros(len(ret))  # EWMA variance known after tick t
        for t in range(len(ret)):
            if t:
                var += max(1.0 / t, 1 / 50) * (ret[t - 1] ** 2 - var)
            ewma[t] = math.sqrt(var)
        bad = np.array([x is not None for x in seq[sid]])  # [T]
        near = np.convolve(bad, np.ones(51), mode="full")[: len(bad)] > 0  # an event within the last 50 ticks
        ok = ~(near[:-1] | near[1:])  # [T-1]
        ok[:warm] = False
        m = int(ok.sum())
        if not m:
            continue
        sse += float(((ret - r_hat[:-1])[ok] ** 2).sum())
        sse0 += float((ret[ok] ** 2).sum())
        mae_g += float(np.abs(np.abs(ret) - k * s_hat[:-1])[ok].sum())
        mae_e += float(np.abs(np.abs(ret) - k * ewma)[ok].sum())
        n += m
    return {
        "ticks": n,
        "return_r2": 1.0 - sse / sse0 if sse0 else float("nan"),
        "absret_mae_gru": mae_g / n if n else float("nan"),
        "absret_mae_ewma": mae_e / n if n else float("nan"),
    }


def _spans(kinds: list[str | None]) -> list[tuple[str, int, int]]:
    """Runs of equal non-None kinds as (kind, first index, last index)."""
    out: list[tuple[str, int, int]] = []
    start = None
    for i, k in enumerate([*kinds, None]):
        if start is not None and (k != kinds[start] if i < len(kinds) else True):
            out.append((kinds[start], start, i - 1))  # type: ignore[arg-type]
            start = None
        if k is not None and start is None:
            start = i
    return out


def report_dict(rep: DetectionReport) -> dict[str, Any]:
    """JSON-friendly form of a report."""
    return {
        "source": rep.source,
        "model_id": rep.model_id,
        "streams": rep.streams,
        "quiet_streams": rep.quiet_streams,
        "quiet_alerts": rep.quiet_alerts,
        "events_in": rep.events_in,
        "seconds": rep.seconds,
        "forecast": rep.forecast,
        "kinds": {
            k: {
                "events": q.events,
                "detected": q.detected,
                "recall": q.recall,
                "alerts": q.alerts,
                "precision": q.precision,
                "latencies": q.latencies,
                "named": q.named,
            }
            for k, q in rep.kinds.items()
        },
    }
