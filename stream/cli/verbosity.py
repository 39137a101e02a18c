"""``-v`` and ``-l/--loglevel``: accepted at the top level and after ``worker`` (``--loglevel`` wins over ``-v``,
both over ``$SEQSTREAM_LOGLEVEL``)."""

from __future__ import annotations

import argparse
import os

__all__ = ["add_log_options", "log_level"]


def add_log_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """``-v`` and ``-l/--loglevel`` (the top-level parser and ``worker`` accept both)."""
    # a subcommand's defaults would overwrite the top level's values: only the top level has defaults
    default_v: object = False if top else argparse.SUPPRESS
    default_l: object = None if top else argparse.SUPPRESS
    p.add_argument("-v", "--verbose", action="store_true", default=default_v, help="debug logging (-l debug)")
    p.add_argument(
        "-l",
        "--loglevel",
        default=default_l,
        metavar="LEVEL",
        type=str.lower,
        choices=["debug", "info", "warn", "warning", "error", "critical"],
        help="log level; wins over -v (default: $SEQSTREAM_LOGLEVEL, else info)",
    )


def log_level(args: argparse.Namespace) -> str:
    """The log level asked for: ``--loglevel``, else ``-v`` (debug), else ``$SEQSTREAM_LOGLEVEL``, else info."""
    explicit = getattr(args, "loglevel", None)
    if explicit:
        return str(explicit)
    if getattr(args, "verbose", False):
        return "debug"
    return os.environ.get("SEQSTREAM_LOGLEVEL", "info").lower() or "info"
