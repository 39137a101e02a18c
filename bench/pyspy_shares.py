"""Split a py-spy raw profile of ``SourcePipeline.process`` into stages (share of its samples).

    .venv/bin/py-spy record -r 250 -f raw -o /tmp/p500.txt -- .venv/bin/python bench/pipeline_bench.py --profile 500
    .venv/bin/python bench/pyspy_shares.py /tmp/p500.txt [more files: one column each]

Each sample under ``SourcePipeline.process`` counts for the first stage found on its stack, in the
order of ``STAGES``; ``Output construction`` is ``Output.many`` (or, in trees before it, the list
comprehension that built the ``Output`` records, ``stream/pipeline.py`` line ``--listcomp-line``).
A full cyclic-GC collection shows up in whatever line allocated when it triggered.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

STAGES = (
    ("Runner.process", ("Runner.process",)),
    ("explorer (RingStore)", ("RingStore.",)),
    ("decode_batch", ("decode_batch",)),
    ("encode_predictions", ("encode_predictions",)),
    ("Output construction", ("Output.many",)),
    ("_finish (dead letters, metrics, record_ts)", ("SourcePipeline._finish",)),
    ("_prepare", ("SourcePipeline._prepare",)),
)


def shares(path: str, listcomp_line: int) -> tuple[int, Counter[str]]:
    total, out = 0, Counter[str]()
    old_output = f"pipeline.py:{listcomp_line})"  # (py-spy shows a --rev tree's file as "pipeline.py")
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            frames = stack.split(";")
            if not any(fr.startswith("SourcePipeline.process (") for fr in frames):
                continue
            n = int(count)
            total += n
            names = [fr.split(" (")[0] for fr in frames]
            for stage, prefixes in STAGES:
                if any(name.startswith(p) for name in names for p in prefixes) or (
                    stage == "Output construction"
                    and any(
                        fr.startswith("SourcePipeline._run.<locals>.<listcomp>") and fr.endswith(old_output)
                        for fr in frames
                    )
                ):
                    out[stage] += n
                    break
            else:
                out["other (pipeline lines, GC)"] += n
    return total, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--listcomp-line", type=int, default=252, help="the Output list comprehension in older trees")
    args = p.parse_args()
    results = [shares(f, args.listcomp_line) for f in args.files]
    print("| stage | " + " | ".join(args.files) + " |")
    print("|---|" + "---:|" * len(args.files))
    for stage in [s for s, _ in STAGES] + ["other (pipeline lines, GC)"]:
        print(f"| {stage} | " + " | ".join(f"{100 * c[stage] / max(1, t):.1f} %" for t, c in results) + " |")
    print("| samples | " + " | ".join(str(t) for t, _ in results) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
