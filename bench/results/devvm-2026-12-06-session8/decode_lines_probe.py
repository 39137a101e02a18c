"""Experiment: would one msgspec call per micro-batch (issue 17's suggestion) beat the per-record scan?

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-06-session8/decode_lines_probe.py

Times, per record, on a batch of 4096 simulated sensor records: the codec's per-record ``_scan``
(msgspec per value) against a whole-batch parse (values joined by newlines, one
``Decoder.decode_lines`` call) with the checks that make it exact: each value one line, starting
with ``{`` and ending with ``}`` (``decode_lines`` reads whitespace-separated values, so without
them two bad records can read as two good ones), keys equal to the stream ids, numeric event times.
"""

import operator
import time
import timeit

import msgspec

import bench.source_batch_cost as sbc
from stream.codec.decode import _scan
from stream.sources import SOURCES

recs = sbc._records("sensors", 4096, 2, time.time() - 3600.0)[1]
wire = SOURCES["sensors"].wire
first, last = operator.itemgetter(0), operator.itemgetter(-1)
decode_lines = msgspec.json.Decoder(wire.schema).decode_lines


def lines_scan() -> object:
    values = [r.value for r in recs]
    n = len(values)
    if max(map(len, values)) > 256:
        return None
    text = b"\n".join(values)
    if (
        text.count(b"\n") != n - 1
        or bytes(map(first, values)) != b"{" * n
        or bytes(map(last, values)) != b"}" * n
        or not text.isascii()
    ):
        return None
    msgs = decode_lines(text)
    ids = [m.stream for m in msgs]
    if len(msgs) != n or "" in ids or list(map(str.encode, ids)) != [r.key for r in recs]:
        return None
    tss = [m.ts for m in msgs]
    if str in set(map(type, tss)):
        return None
    return ids, tss, msgs


values = [r.value for r in recs]
text = b"\n".join(values)
parts = {
    "per-record _scan (the codec's)": lambda: _scan(wire.decoder, recs, 65536),
    "whole batch, checks included": lines_scan,
    "  of which decode_lines alone": lambda: decode_lines(text),
    "  per-value decode alone, for comparison": lambda: [wire.decoder(v) for v in values],
}
for _ in range(2):
    for name, f in parts.items():
        us = min(timeit.repeat(f, number=30, repeat=5)) / 30 / len(recs) * 1e6
        print(f"{us:6.3f} us/record  {name}")
