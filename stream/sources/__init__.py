"""The input sources, one file each: :data:`SOURCES` maps a source's name to its :class:`Source`.

Adding a source is one new file in this folder defining ``SOURCE = Source(...)`` (its topic, wire
schema and decoders, simulation and model binding; the file's name is the source's name), plus its
checkpoint and its tests: the registry below finds the file, the settings accept its name, the
worker serves it, the simulator makes it.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from .base import Anomaly, Event, Source, Wire

__all__ = ["SOURCES", "Anomaly", "Event", "Source", "Wire"]

_NOT_SOURCES = frozenset({"base", "simulator"})  # modules of this package that define no source


def _discover() -> dict[str, Source]:
    found: dict[str, Source] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_SOURCES or info.name.startswith("_"):
            continue
        src = getattr(importlib.import_module(f"{__name__}.{info.name}"), "SOURCE", None)
        if isinstance(src, Source):  # the file's name is the source's
            found[info.name] = dataclasses.replace(src, name=info.name)
    return found


SOURCES: dict[str, Source] = _discover()
