"""``seqstream bench``: end-to-end throughput, latency, step and memory benchmarks in one run.

The command line lives here (:func:`register_args`, :func:`cmd`, :func:`main`; ``python -m
stream.tools.bench`` is :func:`main`); what each scenario measures, and the order they run in, is in
:mod:`.run`.

Example:
    $ seqstream bench                         # on a fresh local Apache Kafka; ~8 minutes on 2 cores
    $ seqstream bench --broker-kind tansu     # the same on the embedded Tansu
    $ seqstream bench --quick                 # smaller backlog and shorter latency levels
"""

from __future__ import annotations

import argparse
import os

from .drain import SHIPPED
from .run import _fill_defaults, run

__all__ = ["cmd", "main", "register_args"]


def register_args(p: argparse.ArgumentParser) -> None:
    """The options of ``seqstream bench`` on ``p``."""
    p.add_argument("--quick", action="store_true", help="smaller backlog, shorter latency levels, no 1M memory")
    p.add_argument(
        "--cell", choices=["gru", "lstm"], nargs="+", default=None, help="cells to drain with (default: gru lstm)"
    )
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden sizes (default: 64 128)")
    p.add_argument(
        "--streams",
        type=int,
        nargs="+",
        default=None,
        help="distinct stream keys per backlog (default: 1000 10000 100000); the first cell and hidden size at "
        "10k streams (else the first count) is the primary configuration behind the ratios and latency",
    )
    p.add_argument("--events", type=int, default=None, help="backlog size (default 200k; 50k with --quick)")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument(
        "--broker",
        default=None,
        metavar="HOST:PORT",
        help="a Kafka broker of your own (host:port[,...] or kafka://...) instead of the embedded Tansu; the "
        "workers use the production profile and every path uses new topics on it",
    )
    p.add_argument(
        "--broker-kind",
        choices=["kafka", "tansu"],
        default=None,
        help="the local broker to start: kafka (Apache Kafka, the default where Java and Maven are installed) or "
        "tansu (the embedded broker of the demo)",
    )
    p.add_argument(
        "--profile",
        choices=["tansu", "production"],
        default=None,
        help="the workers' settings profile (default: tansu on the local Tansu, production on Kafka and with "
        "--broker; tansu for a Tansu of your own)",
    )
    p.add_argument(
        "--primary",
        choices=[SHIPPED, "plain"],
        default=SHIPPED,
        help="the configuration behind the ratios and the latency levels: the shipped sensor detector (default) or "
        "the first --cell/--hidden of the matrix (untrained, plain scoring)",
    )
    p.add_argument(
        "--batch-max",
        type=int,
        nargs="+",
        default=[1024, 4096],
        help="engine micro-batch caps to drain with (best one: latency)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="(raw pass-through, primary drain) pairs; the ratio is their median (default 3; 1 with --quick)",
    )
    p.add_argument(
        "--no-exactly-once",
        dest="exactly_once",
        action="store_false",
        help="skip the primary drain with SEQSTREAM_GUARANTEE=exactly_once (only on Kafka: Tansu has no transactions)",
    )
    p.add_argument("--per-event-n", type=int, default=2000)
    p.add_argument("--latency-seconds", type=float, default=None, help="seconds per latency level (0: skip)")
    p.add_argument("--latency-fractions", type=float, nargs="*", default=[0.1, 0.25, 0.5, 0.9])
    p.add_argument(
        "--no-latency-raw",
        dest="latency_raw",
        action="store_false",
        help="skip the floors: the same latency levels through a plain aiokafka pass-through and through the "
        "broker alone (one hop)",
    )
    p.add_argument(
        "--demo-mix",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds of the demo_mix window: a worker serving the demo's five sources at the demo's rates, "
        "worker CPU µs per event and p99 (default 30; 10 with --quick; 0: skip)",
    )
    p.add_argument("--step-batches", type=int, nargs="*", default=None, help="model step batch sizes")
    p.add_argument("--step-budget", type=float, default=0.5)
    p.add_argument("--memory-streams", type=int, nargs="*", default=None)
    p.add_argument("--json-out", default=None)


def main(argv: list[str] | None = None) -> int:
    """``seqstream bench`` with its own parser (``python -m stream.tools.bench``, ``bench/e2e_bench.py``)."""
    p = argparse.ArgumentParser(prog="seqstream bench", description=__doc__.split("\n")[0])
    register_args(p)
    os.environ.setdefault("SEQSTREAM_LOGLEVEL", "warning")
    return run(_fill_defaults(p.parse_args(argv)))


def cmd(args: argparse.Namespace) -> int:
    """``seqstream bench`` from the ``seqstream`` command line's parsed ``args``."""
    return run(_fill_defaults(args))
