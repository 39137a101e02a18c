"""Shares of a py-spy raw profile (``-f raw``): inclusive per function, then self per line.

    .venv/bin/python bench/results/devvm-2026-12-06-session6/pyspy_aggregate.py PROFILE.raw [TOP]

``prof.sh`` records one of the demo mix's worker (20 s at 200 Hz, busy samples only).
"""

from __future__ import annotations

import sys
from collections import Counter


def _function(frame: str) -> str:
    """``func (path/file.py:line)`` -> ``func (file.py``."""
    if " (" not in frame:
        return frame
    name, where = frame.split(" (", 1)
    return f"{name} ({where.split(':')[0].split('/')[-1]}"


def main(path: str, top: int) -> None:
    incl: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            n = int(count)
            total += n
            frames = stack.split(";")
            for name in {_function(fr) for fr in frames}:  # a function counts once per sample
                incl[name] += n
            own[frames[-1]] += n
    print("total", total)
    print("== inclusive")
    for k, v in incl.most_common(top):
        print(f"{100 * v / total:5.1f} {k}")
    print("== self")
    for k, v in own.most_common(40):
        print(f"{100 * v / total:5.1f} {k}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 70)
