"""`seqstream` command line: offline commands (:mod:`.offline`: replay, train, evaluate) and the ones
that talk to a broker (:mod:`.online`: worker, demo, produce, tail, broker, bench). Heavy imports
(torch, faust) happen inside the commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import offline, online
from .verbosity import add_log_options, log_level

__all__ = ["build_parser", "log_level", "main", "version"]

# what `seqstream --help` says (the module docstring above is for developers)
_DESCRIPTION = """\
seqstream: streaming anomaly detection on Kafka. A worker keeps a recurrent model's state per
stream (sensor, price tick, speech, machine), scores every event and publishes predictions and
alerts; the other commands run it, feed it, read its topics, train and evaluate its models."""
_EPILOG = """\
getting started:
  seqstream demo                      embedded broker + worker + simulated streams, live summary
  seqstream broker --create-topics    a local Kafka (KRaft) for the commands below
  seqstream worker                    the streaming worker (SEQSTREAM_BROKER_URL, docs/operations.md)
  seqstream produce --from-stdin -t T send key<TAB>value or JSON lines to topic T (kcat -P style)
  seqstream tail T --offset -10       print the last 10 records of topic T (kcat -C style)

logging: -v is debug, -l/--loglevel LEVEL sets any level (also after `worker`); an explicit
--loglevel wins over -v, and both win over $SEQSTREAM_LOGLEVEL.
`seqstream COMMAND --help` describes a command; settings (SEQSTREAM_*) are listed in docs/operations.md."""


def version() -> str:
    """The installed package's version, else the source tree's (``pyproject.toml``), else ``unknown``."""
    from importlib import metadata

    try:
        return metadata.version("seqstream")
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        import tomllib

        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


class _Version(argparse.Action):
    """``--version``: resolved only when asked (the metadata lookup is not free)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: object) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS, help="print the version")

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kw: object) -> None:
        print(f"seqstream {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seqstream",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-V", "--version", action=_Version)
    add_log_options(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    offline.register(sub)
    online.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, log_level(args).upper(), logging.INFO),
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
