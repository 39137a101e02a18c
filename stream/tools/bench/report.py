"""What ``seqstream bench`` prints: one JSON line per scenario as it is measured (:func:`_emit`), and
at the end the Markdown tables with the ratios between them (:func:`markdown`)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np

from .drain import SHIPPED


def _emit(rec: dict[str, Any], out: list[dict[str, Any]]) -> None:
    """Keep ``rec`` for the tables and print it now, so a run cut short still leaves its numbers."""
    out.append(rec)
    print(json.dumps(rec), flush=True)


def _fmt_rate(r: float) -> str:
    """Events/s as ``1.23 M`` or ``45.6 k``."""
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.1f} k"


def _config_label(cell: str, hidden: int) -> str:
    """A configuration as its table rows name it."""
    return "shipped detector (sensor_gru.pt)" if cell == SHIPPED else f"{cell}-{hidden}"


def markdown(records: list[dict[str, Any]], seconds: float) -> str:
    """The tables of a run's ``records``: throughput and the ratios, latency, model step, memory."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by[r["scenario"]].append(r)
    lines = [f"\nseqstream bench ({seconds:.0f} s)\n", "| scenario | events/s | note |", "|---|---:|---|"]
    raws = {r.get("round", 0): r["events_per_s"] for r in by["raw_passthrough"]}
    raw = raws.get(0)
    primary = [r for r in by["seqstream"] if r.get("primary", True)]
    first = [r for r in primary if r.get("round", 0) == 0]
    seq = max(first, key=lambda r: r["events_per_s"]) if first else None
    # per round: the primary drain vs the raw pass-through measured just before it
    ratios = [seq["events_per_s"] / raw] if seq and raw else []
    ratios += [r["events_per_s"] / raws[r["round"]] for r in primary if r.get("round", 0) > 0 and raws.get(r["round"])]
    pe = by["per_event"][0] if by["per_event"] else None

    def cores(r: dict[str, Any]) -> str:  # CPU use while draining: is the path CPU-bound or waiting?
        return f"; {r['cpu']} cores, broker {r['broker_cpu']}" if r.get("cpu") is not None else ""

    for r in by["raw_passthrough"]:
        rnd = r.get("round", 0)
        lines.append(
            f"| raw aiokafka pass-through, pipelined | {_fmt_rate(r['events_per_s'])} | ceiling: acks of batch i "
            f"awaited after batch i+1 is sent{f', round {rnd + 1}' if rnd else ''}{cores(r)} |"
        )
    for r in by["raw_passthrough_serial"]:
        lines.append(
            f"| raw aiokafka pass-through, serial | {_fmt_rate(r['events_per_s'])} | each batch's acks before the "
            f"next fetch (not the ratio's base){cores(r)} |"
        )
    for r in by["seqstream"]:
        rnd = r.get("round", 0)
        g = ", **exactly_once**" if r.get("guarantee") == "exactly_once" else ""
        lines.append(
            f"| seqstream end to end{g} | {_fmt_rate(r['events_per_s'])} | {r['streams']} streams, "
            f"{_config_label(r['cell'], r['hidden'])}, batch_max {r['batch_max']}, mean batch {r['mean_batch']:.0f}"
            f"{f', round {rnd + 1}' if rnd else ''}{cores(r)} |"
        )
    if pe:
        per_event, rerun = _fmt_rate(pe["per_event_events_per_s"]), _fmt_rate(pe["rerun64_events_per_s"])
        lines.append(f"| one Runner.process per event | {per_event} | model only, no Kafka |")
        lines.append(f"| re-run last 64 steps per event | {rerun} | model.forward only |")
    if seq and ratios:
        each = (
            f"median of {len(ratios)} rounds: " + ", ".join(f"{x:.2f}" for x in ratios) + "; "
            if len(ratios) > 1
            else ""
        )
        lines.append(
            f"| **seqstream / pipelined raw** | {float(np.median(ratios)):.2f}x | {each}best row of "
            f"{seq['streams']} streams, "
            f"{_config_label(seq['cell'], seq['hidden'])}; target >= 0.5x |"
        )
    eos = [r for r in by["seqstream"] if r.get("guarantee") == "exactly_once"]
    if seq and eos:
        lines.append(
            f"| **exactly_once / at_least_once** | {eos[0]['events_per_s'] / seq['events_per_s']:.2f}x | the same "
            f"drain with one transaction per input partition and batch |"
        )
    if seq and pe:
        lines.append(
            f"| **seqstream / per-event** | {seq['events_per_s'] / pe['per_event_events_per_s']:.1f}x | target >= 20x |"
        )
    if by["latency"]:
        lines += [
            "",
            "| path | fraction of seqstream max | target rate | achieved | p50 ms | p99 ms | p999 ms | p99 / raw p99 "
            "| broker cores |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        raw_p99 = {r["fraction_of_max"]: r["p99_ms"] for r in by["latency_raw"]}
        paths = (
            ("seqstream", by["latency"]),
            ("raw pass-through", by["latency_raw"]),
            ("broker only (one hop)", by["latency_broker"]),
        )
        for path, rows in paths:
            for r in rows:
                base = raw_p99.get(r["fraction_of_max"])
                vs = f"{r['p99_ms'] / base:.2f}x" if path == "seqstream" and base else ""
                lines.append(
                    f"| {path} | {r['fraction_of_max']:.0%} | {r['target_rate']} | {r['achieved_rate']} | "
                    f"{r['p50_ms']} | {r['p99_ms']} | {r['p999_ms']} | {vs} | {r.get('broker_cpu')} |"
                )
    if by["demo_mix"]:
        lines += [
            "",
            "| demo mix (5 sources, real-time rates) | events/s | worker CPU µs/event | worker cores | broker cores "
            "| p50 ms | p99 ms | lag at end | raw pass-through at these rates: CPU µs/event (cores) | worker / raw |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in by["demo_mix"]:
            raw = f"{r['raw_cpu_us_per_event']} ({r.get('raw_cores')})" if r.get("raw_cpu_us_per_event") else "–"
            lines.append(
                f"| {r['broker']} ({r['streams_total']} streams, target {r['target_rate']}/s) | {r['events_per_s']} | "
                f"{r['worker_cpu_us_per_event']} | {r['worker_cores']} | {r['broker_cores']} | {r['p50_ms']} | "
                f"{r['p99_ms']} | {r['lag_end']:.0f} | {raw} | {r.get('worker_vs_raw') or '–'} |"
            )
    if by["model_step"]:
        lines += ["", "| mode | batch | stream-steps/s |", "|---|---:|---:|"]
        for r in by["model_step"]:
            lines.append(f"| {r['mode']} | {r['batch']} | {_fmt_rate(r['stream_steps_per_s'])} |")
    if by["memory"]:
        lines += [
            "",
            "| resident streams | slab B/stream | raw B/stream | ratio | slab MB | RSS MB |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in by["memory"]:
            lines.append(
                f"| {r['resident_streams']:,} | {r['slab_bytes_per_stream']} | {r['raw_tensor_bytes_per_stream']} | "
                f"{r['slab_vs_raw']} | {r['slab_mb']} | {r['rss_mb']} |"
            )
    return "\n".join(lines)
