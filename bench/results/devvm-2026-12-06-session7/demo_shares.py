"""Experiment: split a py-spy raw profile of the demo-mix worker into the shares the closing note quotes.

    cd bench/results/devvm-2026-12-06-session7 && python demo_shares.py demo_worker_s7_end.pyspy.raw

A sample counts once, for the first rule that matches its stack: the Runners (by source, and whether
the batch ran more than one wave: ``Runner._step``'s wave loop), the rest of ``SourcePipeline.process``,
Kafka client work, the event loop's ``select``, everything else.
"""

import sys
from collections import Counter

KAFKA = ("Fetcher", "getmany", "AIOKafka", "Sender", "BulkProducer", "send_records", "Coordinator", "commit")


def source_of(stack: str) -> str:
    if "VadRunner" in stack or "silero" in stack:
        return "audio"
    if "Tick" in stack or "_tick" in stack:
        return "ticks"
    if "Masked" in stack or "pre_masked" in stack:
        return "machines"
    return "sensors/speech (and machines' model steps)"


def shares(path: str) -> tuple[int, Counter[str]]:
    total, out = 0, Counter[str]()
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            n = int(count)
            total += n
            if "SourcePipeline.process" in stack:
                if "Runner.process" in stack or "VadRunner.process" in stack:
                    multi = "<listcomp>" in stack and "Runner._step" in stack
                    key = "runner: " + source_of(stack) + (", several waves" if multi else "")
                else:
                    key = "pipeline around the Runner (decode, encode, explorer, outputs)"
            elif any(k in stack for k in KAFKA):
                key = "Kafka client"
            elif "select" in stack:
                key = "event loop select"
            else:
                key = "engine, event loop, other"
            out[key] += n
    return total, out


if __name__ == "__main__":
    for p in sys.argv[1:]:
        tot, c = shares(p)
        print(p, tot, "samples")
        for k, n in c.most_common():
            print(f"{100 * n / tot:5.1f} % {k}")
