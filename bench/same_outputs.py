"""Same outputs, byte for byte, as another revision: the check behind a behaviour-preserving change.

    .venv/bin/python bench/same_outputs.py --rev 7a7023d            # the commit before the restructuring
    .venv/bin/python bench/same_outputs.py --rev 7a7023d --no-nab   # skip the two NAB replays (~1.5 min)

Checks out ``--rev`` into a temporary git worktree and runs the same steps with each tree's own code
(a fresh interpreter per tree, ``PYTHONPATH`` set to it), then compares the files byte for byte:

1. ``simulated.jsonl``: every source's simulator (fixed seeds, injected anomalies) plus a few
   broken records, made by each tree's simulator;
2. ``outputs.txt``: those records, with partitions and offsets fixed, through every source's
   ``SourcePipeline`` in fixed micro-batches of 256 (what the worker does per fetched batch):
   every prediction, alert and dead letter in order;
3. ``audio.txt``: the audio source at its real frame rate with injected utterances, an
   out-of-order frame and a broken one (speech start/end alerts, dead letters);
4. ``replay/`` and ``nab/``: ``seqstream replay`` and ``seqstream evaluate nab`` over
   ``../shared/data/nab-dev`` (the NAB dev files, when present).

Through a broker the outputs cannot be byte for byte the same even between two runs of one revision:
the micro-batches a consumer fetches differ from run to run, and a batched step's float sums differ
in their last bits with the batch (measured: 1.3k of 16.9k predictions, relative 1.5e-6). Hence fixed
batches here.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAB = ROOT.parent / "shared" / "data" / "nab-dev"

# runs inside each tree; works with the layout before the restructuring (stream/simulator.py,
# stream/audio.py) and after it (stream/sources/, one SourcePipeline for every source)
_DRIVE = r"""
import base64, json, sys, zlib
from types import SimpleNamespace
from stream.settings import Settings
from stream.pipeline import SourcePipeline, build_runner
try:
    from stream.simulator import Simulator
except ImportError:
    from stream.sources.simulator import Simulator
try:
    from stream.audio import AudioPipeline, build_vad_runner
except ImportError:
    AudioPipeline = None
out = sys.argv[1]
NAMES = ["sensors", "speech", "ticks", "audio", "machines"]
s = Settings(sources=tuple(NAMES))

def pipeline(name, settings):
    if name == "audio" and AudioPipeline is not None:
        return AudioPipeline(build_vad_runner(settings), settings)
    return SourcePipeline(name, build_runner(settings, name), settings)

def rec(topic, part, off, key, value):
    ms = 1_700_000_000_000 + off
    return SimpleNamespace(topic=topic, partition=part, offset=off, key=key, value=value, timestamp=ms)

def line(o):
    return b"%s\t%d\t%s\t%s\n" % (o.topic.encode(), o.origin, o.key or b"", o.value)

# 1. simulated records of every source
sims = {n: Simulator(n, k, seed=11 + i) for i, (n, k) in enumerate(zip(NAMES, (30, 12, 10, 3, 10)))}
for sim in sims.values():
    sim.inject(max(1, sim.n_streams // 5), 60, 140)
records = []
for r in range(220):
    t = 1_700_000_000.0 + r * 0.5
    for n, sim in sims.items():
        if n != "audio" or r < 120:
            records += [(s.topic(n), e.key(), e.value()) for e in sim.round(t)]
    if r % 50 == 7:
        for n in NAMES:
            for bad in (b"not json", b'{"stream": "x"}', b'{"stream": 5, "ts": "yesterday"}'):
                records.append((s.topic(n), b"bad-key", bad))
with open(f"{out}/simulated.jsonl", "w") as f:
    for topic, key, value in records:
        f.write(json.dumps([topic, base64.b64encode(key).decode(), base64.b64encode(value).decode()]) + "\n")

# 2. through every source's pipeline in fixed micro-batches
by_topic = {s.topic(n): n for n in NAMES}
per_source = {n: [] for n in NAMES}
offsets = {}
for topic, key, value in records:
    part = zlib.crc32(key) % 8
    off = offsets[topic, part] = offsets.get((topic, part), -1) + 1
    per_source[by_topic[topic]].append(rec(topic, part, off, key, value))
with open(f"{out}/outputs.txt", "wb") as f:
    for n in NAMES:
        pipe = pipeline(n, s)
        rs = per_source[n]
        for i in range(0, len(rs), 256):
            f.writelines(map(line, pipe.process(rs[i:i + 256], now=1_800_000_000.0).outputs))

# 3. audio at its frame rate: utterances, one out-of-order frame, one broken record
sa = Settings(sources="audio")
pipe = pipeline("audio", sa)
sim = Simulator("audio", n_streams=6, seed=1)
sim.inject(3, 10, 40)
with open(f"{out}/audio.txt", "wb") as f:
    for r in range(220):
        evs = sim.round(1000.0 + r * 0.032)
        batch = [rec("speech-audio", i % 3, r * 6 + i, e.key(), e.value()) for i, e in enumerate(evs)]
        if r == 100:
            late = evs[0].value().replace(b'"ts":', b'"ts":1.0,"x":')  # older than the stream's last frame
            batch.append(rec("speech-audio", 0, 99999, evs[0].key(), late))
            batch.append(rec("speech-audio", 0, 99998, b"mic-0001", b"{"))
        f.writelines(map(line, pipe.process(batch, now=2000.0).outputs))
print(len(records), "records")
"""


def _run_tree(tree: Path, out: Path, nab: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # -c with cwd=out: the tree comes from PYTHONPATH alone, not from the current folder
    subprocess.run([sys.executable, "-c", _DRIVE, str(out)], env=env, cwd=out, check=True)
    if nab:
        if not NAB.is_dir():
            raise SystemExit(f"{NAB} is missing; give --no-nab to compare without the NAB replays")
        cli = [sys.executable, "-m", "stream.cli"]
        data, labels = NAB / "data", NAB / "combined_windows.json"
        subprocess.run([*cli, "replay", str(data), "-o", str(out / "replay"), "-q"], env=env, cwd=out, check=True)
        report = subprocess.run(
            [*cli, "evaluate", "nab", str(data), str(labels), "-o", str(out / "nab"), "-q"],
            env=env,
            cwd=out,
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ).stdout
        # the report without its one timing line
        (out / "nab-report.txt").write_text("".join(ln for ln in report.splitlines(True) if "events/s" not in ln))


def _same(a: Path, b: Path) -> list[str]:
    """Paths under ``a`` and ``b`` that differ (or exist on one side only)."""
    cmp = filecmp.dircmp(a, b)
    bad = [str(a / x) for x in cmp.left_only + cmp.right_only + cmp.funny_files]
    bad += [x for x in cmp.common_files if not filecmp.cmp(a / x, b / x, shallow=False)]
    for sub in cmp.common_dirs:
        bad += _same(a / sub, b / sub)
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", required=True, help="the revision to compare the working tree with")
    p.add_argument("--no-nab", action="store_true", help="skip seqstream replay / evaluate nab")
    p.add_argument("--keep", type=Path, default=None, help="keep both trees' outputs in this folder")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "rev"
        subprocess.run(["git", "worktree", "add", "--detach", str(other), args.rev], cwd=ROOT, check=True)
        try:
            outs = Path(args.keep) if args.keep else Path(tmp) / "out"
            for name, tree in (("rev", other), ("work", ROOT)):
                print(f"{name}: {tree}", flush=True)
                _run_tree(tree, outs / name, not args.no_nab)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
        files = sorted(str(p.relative_to(outs / "rev")) for p in (outs / "rev").rglob("*") if p.is_file())
        bad = _same(outs / "rev", outs / "work")
        print(f"{len(files)} files compared: {', '.join(f for f in files if '/' not in f)} and the NAB folders")
        print("same bytes" if not bad else "DIFFERENT: " + ", ".join(bad))
        return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
