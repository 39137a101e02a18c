"""Streaming subcommands of ``seqstream``: ``worker``, ``demo``, ``produce``, ``tail``, ``bench``.

Registered by :mod:`stream.cli`; heavy imports (faust, aiokafka, torch) happen inside the commands.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["faust_worker", "register"]


def _add_broker(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default=None, help="kafka://host:port[,host:port] (default: $SEQSTREAM_BROKER_URL)")


def _settings(args: argparse.Namespace, **extra: Any) -> Any:
    from stream.settings import load_settings

    return load_settings(broker_url=getattr(args, "broker", None), **extra)


def _preflight(settings: Any, topics: list[str] | None = None, hint: str = "") -> None:
    """Brokers reachable (retried for ``connect_timeout_s``), ``topics`` there, transactions if needed;
    else one line and exit 2 (:func:`stream.admin.preflight`)."""
    from stream.preflight import preflight

    preflight(settings, topics or (), hint)


def _client_kwargs(settings: Any) -> dict[str, Any]:
    from stream.admin import client_kwargs

    return client_kwargs(settings)


def _talking_to(settings: Any, run: Any) -> Any:
    """Run a client coroutine; a Kafka or network failure on the way becomes one line (BrokerError)."""
    import asyncio

    from aiokafka.errors import KafkaError

    from stream.admin import broker_error

    try:
        return asyncio.run(run)
    except (TimeoutError, KafkaError, OSError) as exc:
        raise broker_error(exc, ",".join(settings.bootstrap_servers)) from None


def _stop_quietly_before_faust() -> None:
    """SIGTERM/SIGINT before Faust's worker takes over the signals: nothing to flush yet, exit 0 at once."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _checkpoints(pairs: list[str] | None) -> dict[str, str] | None:
    """``--checkpoint SOURCE=PATH`` (repeated) as a mapping; one clear line when malformed."""
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            from models.errors import ConfigError

            raise ConfigError(f"--checkpoint {pair!r}: expected SOURCE=PATH, e.g. --checkpoint sensors=/models/s.pt")
        out[name.strip()] = path
    return out


def _cmd_worker(args: argparse.Namespace) -> int:
    from stream.settings import load_settings

    # the worker's options are named as the settings they override (None: the environment's value)
    _stop_quietly_before_faust()  # Faust's worker installs its own handlers (a graceful, bounded stop)
    named = ("profile", "web_host", "web_port", "device", "batch_max", "batch_wait_s", "sources", "open_threshold")
    overrides = {name: getattr(args, name) for name in named}
    settings = load_settings(broker_url=args.broker, checkpoints=_checkpoints(args.checkpoint), **overrides)
    settings.bootstrap_servers  # noqa: B018 - fail early with a clear message when no broker is set
    for source in settings.sources:
        settings.checkpoint(source)  # fail early with what to do when a checkpoint is missing
    _preflight(settings)  # an unreachable broker or one without transactions: one line, exit 2

    from stream.app import create_app

    app = create_app(settings)
    from .verbosity import log_level

    worker = faust_worker(app, log_level(args))
    try:
        worker.execute_from_commandline()  # returns via SystemExit when the worker stops
    except SystemExit:
        fatal = getattr(app, "seqstream_fatal", None)
        if fatal is not None:  # the engine stopped on a refusal: one line, exit 2 (stream.cli.main)
            raise fatal from None
        raise
    return 0


def faust_worker(app: Any, loglevel: str) -> Any:
    """Faust's worker for ``app``, without its terminal spinner: at a level of warning or above Faust
    adds a DEBUG handler for the spinner and lowers the root logger to DEBUG, so every aiokafka debug
    record was built and dropped (7 % of the demo mix's CPU)."""
    from faust.worker import Worker

    worker = Worker(app, loglevel=loglevel, quiet=True)
    worker.spinner = None
    return worker


def _cmd_demo(args: argparse.Namespace) -> int:
    from stream.tools.demo import run_demo

    return run_demo(seconds=args.seconds, broker=args.broker, quiet=args.quiet)


def _cmd_produce(args: argparse.Namespace) -> int:
    import json

    from stream.sources.simulator import Simulator
    from stream.tools.produce import produce

    if args.from_stdin:
        return _produce_stdin(args)
    if not args.source:
        args.parser.error("--source is required (or --from-stdin to send stdin's lines)")
    settings = _settings(args)
    sim = Simulator(args.source, args.streams, seed=args.seed)
    per_stream_hz = args.rate / sim.mean_events_per_round()
    if args.anomalies:
        total_rounds = int(args.seconds * per_stream_hz)
        sim.inject(max(1, args.streams // 50), int(total_rounds * 0.3), int(total_rounds * 0.8))
    topic = args.topic or settings.topic(args.source)
    _preflight(
        settings,
        [topic],
        "create it (`seqstream broker --create-topics`, kafka-topics.sh --create) or name an existing one with --topic",
    )
    sent = _talking_to(
        settings,
        produce(
            settings.bootstrap_servers,
            topic,
            sim,
            rate=args.rate,
            seconds=args.seconds,
            kafka_kwargs=_client_kwargs(settings),
        ),
    )
    print(f"produced {sent} events to {topic} ({args.streams} streams, {sent / max(args.seconds, 1e-9):.0f}/s)")
    for a in sim.labels:
        print(f"injected anomaly: {a.kind} on {a.stream} at ts={a.start_ts:.3f} for {a.length} events")
    if args.labels_out:
        with open(args.labels_out, "w") as f:
            json.dump([a.__dict__ for a in sim.labels], f, indent=1)
    return 0


def _produce_stdin(args: argparse.Namespace) -> int:
    """``produce --from-stdin``: kcat ``-P``; the summary goes to stderr (stdout stays free for pipes)."""

    from stream.tools.produce import produce_lines

    if not args.topic:
        args.parser.error("--from-stdin needs --topic (any topic: stdin's lines are not a source's events)")
    if args.source or args.anomalies or args.labels_out:
        args.parser.error("--source, --anomalies and --labels-out are for simulated data, not --from-stdin")
    _quiet_client_logs(args)
    settings = _settings(args)
    _preflight(settings, [args.topic], "create it (kafka-topics.sh --create) or name an existing one with --topic")
    sent = _talking_to(
        settings,
        produce_lines(
            settings.bootstrap_servers,
            args.topic,
            sys.stdin.buffer,
            fmt=args.format,
            key_delimiter=args.key_delimiter,
            partition=args.partition,
            kafka_kwargs=_client_kwargs(settings),
        ),
    )
    print(f"sent {sent} records to {args.topic}", file=sys.stderr)
    return 0


def _quiet_client_logs(args: argparse.Namespace) -> None:
    """tail/produce: aiokafka's INFO lines (subscriptions, coordinators) are noise on a user's terminal."""
    import logging

    from .verbosity import log_level

    if log_level(args) != "debug":
        logging.getLogger("aiokafka").setLevel(logging.WARNING)


def _cmd_tail(args: argparse.Namespace) -> int:
    from stream.tools.tail import parse_offset, tail

    _quiet_client_logs(args)
    settings = _settings(args)
    kw = _client_kwargs(settings)
    offset = parse_offset(args.offset) if args.offset is not None else None
    _preflight(settings, [args.topic], "check its name (kafka-topics.sh --list shows the topics)")
    try:
        return int(
            _talking_to(
                settings,
                tail(
                    settings.bootstrap_servers,
                    args.topic,
                    from_beginning=args.from_beginning,
                    limit=args.limit,
                    raw=args.raw,
                    idle_exit=args.idle_exit,
                    kafka_kwargs=kw,
                    offset=offset,
                    partitions=args.partition,
                    group=args.group,
                    key=args.key,
                    fmt=args.format,
                    exit_at_end=args.exit_at_end,
                ),
            )
        )
    except KeyboardInterrupt:
        return 0


def _cmd_broker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from stream.admin import create_topics
    from stream.settings import load_settings
    from stream.tools.brokers import EmbeddedBroker

    if args.kind == "kafka":
        from pathlib import Path

        from stream.tools.kafka_broker import KafkaBroker

        data = Path(args.data_dir) if args.data_dir else None
        b: Any = KafkaBroker(args.port, host=args.host, data_dir=data, heap=args.heap)
    else:
        b = EmbeddedBroker(args.port, host=args.host)
    b.start()
    try:
        if args.create_topics:
            s = load_settings(broker_url=b.url)
            topics = [*s.input_topics, *s.output_topics]
            create_topics(b.bootstrap, topics, s.partitions, s.replication_factor)
            create_topics(b.bootstrap, [s.topic_control], 1, s.replication_factor)
        where = f", data in {b.data_dir}, log {b.log_path}" if args.kind == "kafka" else f", log {b.log_path}"
        print(f"{b.kind} broker ready: SEQSTREAM_BROKER_URL={b.url}{where}; Ctrl-C stops it", flush=True)
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        while not done.wait(0.5):
            if hasattr(b, "alive") and not b.alive():
                print(f"seqstream: error: the broker exited; see {b.log_path}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()
    return 0


def register(sub: Any) -> None:
    """Add the streaming subcommands to the ``seqstream`` parser."""
    w = sub.add_parser("worker", help="run the streaming worker (Faust app stream.app) against a Kafka broker")
    _add_broker(w)
    w.add_argument(
        "--profile",
        choices=["production", "tansu"],
        default=None,
        help="settings profile (tansu: the Tansu broker's workarounds)",
    )
    w.add_argument("--web-host", default=None, help="bind address of the web/metrics server")
    w.add_argument("--web-port", type=int, default=None, help="port of the web server (/metrics)")
    w.add_argument("--device", default=None, help="auto | cpu | cuda")
    w.add_argument("--batch-max", type=int, default=None, help="most events per micro-batch")
    w.add_argument(
        "--batch-wait",
        dest="batch_wait_s",
        metavar="SECONDS",
        type=float,
        default=None,
        help="seconds to wait to fill a micro-batch",
    )
    w.add_argument(
        "--sources", default=None, help="comma-separated source names (stream/sources/), e.g. sensors,speech,audio"
    )
    w.add_argument(
        "--checkpoint",
        action="append",
        metavar="SOURCE=PATH",
        help="a source's model file (repeatable; default: its bundled model, $SEQSTREAM_CHECKPOINT_<SOURCE>)",
    )
    w.add_argument(
        "--threshold",
        dest="open_threshold",
        metavar="SCORE",
        type=float,
        default=None,
        help="override the alert open threshold",
    )
    from .verbosity import add_log_options

    add_log_options(w, top=False)  # `seqstream -v worker` and `seqstream worker -v` both work
    w.set_defaults(func=_cmd_worker)

    d = sub.add_parser("demo", help="embedded broker + worker + simulated streams with anomalies, live summary")
    _add_broker(d)
    d.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after N seconds of producing, once the worker is ready (default: until Ctrl-C)",
    )
    d.add_argument("-q", "--quiet", action="store_true", help="only the final summary")
    d.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "produce",
        help="produce simulated streams, or stdin's lines (--from-stdin, kcat -P style), to a broker",
        description="Simulated streams of a source (--source, the default mode), or with --from-stdin one record "
        "per line of stdin to any topic: `key<TAB>value` (--format kv; no tab: no key) or JSON objects "
        '(--format json: {"key", "value", "partition", "headers"}; a non-string value is sent as its JSON text, '
        "b64:... strings are base64 bytes). Empty lines are skipped; a bad line stops with one line naming it "
        "(the records before it are sent). The summary goes to stderr.",
    )
    _add_broker(p)
    p.add_argument("--source", default=None, help="a source name (stream/sources/), e.g. sensors, ticks, audio")
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--rate", type=float, default=1000.0, help="events per second, all streams together")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument(
        "--anomalies",
        action="store_true",
        help="inject labelled anomalies (about one per 50 streams; ticks: the event kinds in turn)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-t", "--topic", default=None, help="the topic (simulated: overrides the source's input topic)")
    p.add_argument("--labels-out", default=None, help="write the injected anomalies as JSON")
    p.add_argument("-P", "--from-stdin", action="store_true", help="send stdin's lines instead of simulated data")
    p.add_argument("--format", choices=["kv", "json"], default="kv", help="--from-stdin: line format (default kv)")
    p.add_argument(
        "-K",
        "--key-delimiter",
        default="\t",
        metavar="DELIM",
        help="--format kv: what separates the key from the value (default: a tab)",
    )
    p.add_argument(
        "-p", "--partition", type=int, default=None, help="--from-stdin: this partition (default: by key hash)"
    )
    p.set_defaults(func=_cmd_produce, parser=p)

    t = sub.add_parser(
        "tail",
        help="print records of a topic (kcat -C style)",
        description="Print a topic's records, one line each: decoded outputs, alerts and dead letters (text), "
        "the value as it is (--raw), or JSON objects (--format json: what produce --from-stdin --format json "
        "reads back). Keys (and JSON values) that are not UTF-8 are shown as b64:<base64>.",
    )
    _add_broker(t)
    t.add_argument("topic")
    t.add_argument(
        "-o",
        "--offset",
        default=None,
        help="where to start: end (default), beginning, an offset N, or -N: the last N records of each partition",
    )
    t.add_argument("--from-beginning", action="store_true", help="the same as --offset beginning")
    t.add_argument(
        "-p",
        "--partition",
        type=int,
        action="append",
        metavar="N",
        help="read only partition N (repeatable; default: all)",
    )
    t.add_argument(
        "-G",
        "--group",
        default=None,
        help="read as a member of this consumer group and commit (its committed offsets decide where it reads)",
    )
    t.add_argument("-k", "--key", default=None, help="only records with this key (b64:... for a binary key)")
    t.add_argument("--format", choices=["text", "json"], default="text", help="text (default) or json lines")
    t.add_argument("-n", "-c", "--limit", "--count", dest="limit", type=int, default=None, help="stop after N records")
    t.add_argument("--raw", action="store_true", help="print values as they are")
    t.add_argument(
        "--idle-exit",
        "--timeout",
        dest="idle_exit",
        metavar="SECONDS",
        type=float,
        default=None,
        help="exit after N seconds without records",
    )
    t.add_argument(
        "-e", "--exit-at-end", action="store_true", help="exit once the end of each partition is reached (kcat -e)"
    )
    t.set_defaults(func=_cmd_tail)

    k = sub.add_parser(
        "broker",
        help="run a local broker in the foreground: Apache Kafka (KRaft, no Docker; Java, Maven) or Tansu",
    )
    k.add_argument("--kind", choices=["kafka", "tansu"], default="kafka", help="kafka (default) or tansu")
    k.add_argument("--host", default="127.0.0.1", help="listener address (default 127.0.0.1)")
    k.add_argument("--port", type=int, default=9092, help="client port (default 9092; 0: a free one)")
    k.add_argument("--data-dir", default=None, help="kafka: keep the log segments here (default: a temporary folder)")
    k.add_argument("--heap", default="512m", help="kafka: JVM heap (default 512m)")
    k.add_argument("--create-topics", action="store_true", help="create the worker's input and output topics")
    k.set_defaults(func=_cmd_broker)

    from stream.tools.bench import cmd as _cmd_bench
    from stream.tools.bench import register_args as _bench_args

    b = sub.add_parser("bench", help="end-to-end benchmark: own Tansu broker, raw Kafka ceiling, latency, memory")
    _bench_args(b)
    b.set_defaults(func=_cmd_bench)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `seqstream`")
