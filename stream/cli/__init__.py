"""`seqstream` command line: offline commands (:mod:`.offline`: replay, train, evaluate) and the ones
that talk to a broker (:mod:`.online`: worker, demo, produce, tail, broker, bench). Heavy imports
(torch, faust) happen inside the commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import offline, online

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqstream", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    offline.register(sub)
    online.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from models.errors import SeqstreamError

    try:
        return int(args.func(args) or 0)
    except SeqstreamError as exc:
        print(f"seqstream: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not type(exc).__module__.startswith("aiokafka"):
            raise
        # a Kafka failure no command translated (the broker went away mid-way): still one line
        from stream.admin import broker_error

        print(f"seqstream: error: {broker_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
