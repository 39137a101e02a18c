"""Streaming subcommands of ``seqstream``: ``worker``, ``demo``, ``produce``, ``tail``, ``bench``.

Registered by :mod:`stream.cli`; heavy imports (faust, aiokafka, torch) happen inside the commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register"]


def _add_broker(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default=None, help="kafka://host:port[,host:port] (default: $SEQSTREAM_BROKER_URL)")


def _settings(args: argparse.Namespace, **extra: Any) -> Any:
    from .settings import load_settings

    return load_settings(broker_url=getattr(args, "broker", None), **extra)


def _cmd_worker(args: argparse.Namespace) -> int:
    from .settings import load_settings

    settings = load_settings(
        broker_url=args.broker,
        profile=args.profile,
        web_host=args.web_host,
        web_port=args.web_port,
        device=args.device,
        batch_max=args.batch_max,
        batch_wait_s=args.batch_wait,
        sources=args.sources,
        checkpoint_sensors=args.checkpoint_sensors,
        checkpoint_speech=args.checkpoint_speech,
        checkpoint_ticks=args.checkpoint_ticks,
        checkpoint_machines=args.checkpoint_machines,
        open_threshold=args.threshold,
    )
    settings.bootstrap_servers  # noqa: B018 - fail early with a clear message when no broker is set
    for source in settings.sources:
        settings.checkpoint(source)  # fail early with what to do when a checkpoint is missing

    from faust.worker import Worker

    from .app import create_app

    app = create_app(settings)
    worker = Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()  # returns via SystemExit when the worker stops
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(seconds=args.seconds, broker=args.broker, quiet=args.quiet)


def _cmd_produce(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from .simulator import Simulator, produce

    settings = _settings(args)
    sim = Simulator(args.source, args.streams, seed=args.seed)
    per_stream_hz = args.rate / sim.mean_events_per_round()
    if args.anomalies:
        total_rounds = int(args.seconds * per_stream_hz)
        sim.inject(max(1, args.streams // 50), int(total_rounds * 0.3), int(total_rounds * 0.8))
    topic = args.topic or settings.topic(args.source)
    sent = asyncio.run(
        produce(
            settings.bootstrap_servers,
            topic,
            sim,
            rate=args.rate,
            seconds=args.seconds,
            kafka_kwargs={k: v for k, v in settings.kafka_kwargs().items() if k != "bootstrap_servers"},
        )
    )
    print(f"produced {sent} events to {topic} ({args.streams} streams, {sent / max(args.seconds, 1e-9):.0f}/s)")
    for a in sim.labels:
        print(f"injected anomaly: {a.kind} on {a.stream} at ts={a.start_ts:.3f} for {a.length} events")
    if args.labels_out:
        with open(args.labels_out, "w") as f:
            json.dump([a.__dict__ for a in sim.labels], f, indent=1)
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    import asyncio

    from .tail import tail

    settings = _settings(args)
    kw = {k: v for k, v in settings.kafka_kwargs().items() if k != "bootstrap_servers"}
    try:
        return asyncio.run(
            tail(
                settings.bootstrap_servers,
                args.topic,
                from_beginning=args.from_beginning,
                limit=args.limit,
                raw=args.raw,
                idle_exit=args.idle_exit,
                kafka_kwargs=kw,
            )
        )
    except KeyboardInterrupt:
        return 0


def register(sub: Any) -> None:
    """Add the streaming subcommands to the ``seqstream`` parser."""
    w = sub.add_parser("worker", help="run the streaming worker (Faust app stream.app) against a Kafka broker")
    _add_broker(w)
    w.add_argument("--profile", choices=["production", "embedded"], default=None, help="settings profile")
    w.add_argument("--web-host", default=None, help="bind address of the web/metrics server")
    w.add_argument("--web-port", type=int, default=None, help="port of the web server (/metrics)")
    w.add_argument("--device", default=None, help="auto | cpu | cuda")
    w.add_argument("--batch-max", type=int, default=None, help="most events per micro-batch")
    w.add_argument("--batch-wait", type=float, default=None, help="seconds to wait to fill a micro-batch")
    w.add_argument("--sources", default=None, help="comma-separated: sensors,speech,ticks,machines[,audio]")
    w.add_argument("--checkpoint-sensors", default=None)
    w.add_argument("--checkpoint-speech", default=None)
    w.add_argument("--checkpoint-ticks", default=None)
    w.add_argument("--checkpoint-machines", default=None)
    w.add_argument("--threshold", type=float, default=None, help="override the alert open threshold")
    w.add_argument("-l", "--loglevel", default=os.environ.get("SEQSTREAM_LOGLEVEL", "info"))
    w.set_defaults(func=_cmd_worker)

    d = sub.add_parser("demo", help="embedded broker + worker + simulated streams with anomalies, live summary")
    _add_broker(d)
    d.add_argument("--seconds", type=float, default=None, help="stop after N seconds (default: until Ctrl-C)")
    d.add_argument("-q", "--quiet", action="store_true", help="only the final summary")
    d.set_defaults(func=_cmd_demo)

    p = sub.add_parser("produce", help="produce simulated streams to a broker")
    _add_broker(p)
    p.add_argument("--source", choices=["sensors", "speech", "ticks", "audio", "machines"], required=True)
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--rate", type=float, default=1000.0, help="events per second, all streams together")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument(
        "--anomalies",
        action="store_true",
        help="inject labelled anomalies (about one per 50 streams; ticks: the event kinds in turn)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--topic", default=None, help="override the input topic")
    p.add_argument("--labels-out", default=None, help="write the injected anomalies as JSON")
    p.set_defaults(func=_cmd_produce)

    t = sub.add_parser("tail", help="pretty-print records of a topic")
    _add_broker(t)
    t.add_argument("topic")
    t.add_argument("--from-beginning", action="store_true")
    t.add_argument("-n", "--limit", type=int, default=None, help="stop after N records")
    t.add_argument("--raw", action="store_true", help="print values as they are")
    t.add_argument("--idle-exit", type=float, default=None, help="exit after N seconds without records")
    t.set_defaults(func=_cmd_tail)

    from .bench import cmd as _cmd_bench
    from .bench import register_args as _bench_args

    b = sub.add_parser("bench", help="end-to-end benchmark: own Tansu broker, raw Kafka ceiling, latency, memory")
    _bench_args(b)
    b.set_defaults(func=_cmd_bench)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `seqstream`")
