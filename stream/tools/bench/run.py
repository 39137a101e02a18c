"""The orchestration of ``seqstream bench`` (:func:`run`): every scenario, in one run, on one broker.

Starts its own broker: Apache Kafka (:class:`stream.tools.kafka_broker.KafkaBroker`, the default where Java
and Maven are installed) or Tansu (``--broker-kind tansu``, :class:`stream.tools.brokers.EmbeddedBroker`);
``--broker HOST:PORT`` uses a Kafka of your own instead. Prints one JSON line per scenario, then a
Markdown table (:mod:`.report`). The primary configuration is the shipped detector (``--primary shipped``: the
bundled sensor checkpoint with its scoring) at 10k streams; ``--primary plain`` makes it the first
cell and hidden size of the matrix instead. Scenarios (all measured in the same run, so ratios hold):

* ``raw_passthrough``: the ceiling. A plain aiokafka consumer (``getmany``) forwards a pre-produced
  backlog of the same sensor messages to an output topic (one ``send_batch`` per partition), no
  decoding, with seqstream's guarantee (offsets committed after their outputs' acks) and pipelined as
  the engine is: batch i's acks are awaited after batch i+1 was sent. ``raw_passthrough_serial``: the
  same with every batch's acks awaited before the next fetch, a second row (the old, weaker ceiling).
* ``seqstream``: for every (streams, cell, hidden) of ``--streams`` x ``--cell`` x ``--hidden``
  (default 1k/10k/100k x GRU/LSTM x 64/128), the real :class:`stream.engine.BatchEngine` in this
  process (aiokafka consumer in its consumer group, :class:`stream.pipeline.SourcePipeline`
  decode -> state -> model -> score -> encode, bulk produce, commit, state snapshots, explorer
  buffers) draining the same backlog; the rate is counted from the first processed batch (and the
  one-time heap freeze after it) to the last event (group join excluded).
* ``per_event``: the naive baseline, one ``Runner.process`` per event (model work only, no Kafka:
  an upper bound of what a per-event consumer reaches), and ``rerun64``: re-running the last 64
  steps of the stream from a zero state per event (``model.forward`` on a [1, 64, F] window).
* ``latency``: the engine in a child process; this process produces at 10/25/50/90 % of the measured
  seqstream drain rate and reads the ``predictions`` topic; latency = receive time - event ``ts``.
  The floors at the same rates: ``latency_raw`` (a plain aiokafka pass-through child instead of the
  engine) and ``latency_broker`` (the input topic read back: one hop through the broker, nothing
  in between). Each level records the cores the broker process used (``broker_cpu``). Each of the
  three paths runs on a fresh broker of its own (Tansu slows down as it fills up; on Kafka it keeps
  the paths apart).
* ``--rounds``: more (raw pass-through, primary drain) pairs, alternating; the ratio is their median.
* ``demo_mix``: a worker child serving the demo's five sources (shipped models) fed at the demo's
  real-time rates (:mod:`.demo_mix`): worker CPU µs per event, cores of worker and broker, p50/p99;
  then its floor on the same broker: a raw aiokafka pass-through with the worker's fetch hold, fed the
  same way (``raw_cpu_us_per_event``, ``worker_vs_raw``).
* ``model_step``: the ``model_step`` and ``batched`` cells (:mod:`.step`, also ``bench/step_bench.py``'s)
  by batch size.
* ``memory``: a CPU Runner with N resident streams in a child process: slab bytes per stream vs
  the raw tensor bytes, and process RSS.

Where each lives: the backlog, its drains and the broker in :mod:`.drain`, the latency paths in
:mod:`.latency`, the scenarios without a broker in :mod:`.model_only` (the timed step cells in
:mod:`.step`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time
import uuid
from pathlib import Path
from typing import Any

from .demo_mix import demo_mix
from .drain import (
    SHIPPED,
    _broker,
    _default_kind,
    _produce_backlog,
    _raw_passthrough,
    _sensor_messages,
    _seqstream_drain,
    _settings,
)
from .latency import _latency_child, _latency_levels, _raw_latency_child
from .model_only import _memory_child, _per_event_rates, _step_cells
from .report import _emit, markdown


def run(args: argparse.Namespace) -> int:
    """Every scenario of ``args`` (with its defaults filled in), in order; prints the JSON lines and the tables."""
    import logging

    from stream.admin import create_topics

    for name in ("aiokafka", "stream", "faust"):  # JSON lines and the table only
        logging.getLogger(name).setLevel(logging.WARNING)
    records: list[dict[str, Any]] = []
    t_start = time.time()
    # the primary configuration (10k streams, the first cell and hidden size) carries the ratios,
    # the latency levels, the per-event baseline, the step cells and the memory scenario; every other
    # (streams, cell, hidden) of the matrix gets one drain at the largest batch_max
    streams = 10000 if 10000 in args.streams else args.streams[0]
    cell, hidden = (SHIPPED, 64) if args.primary == SHIPPED else (args.cell[0], args.hidden[0])
    n = args.events
    common = {"cell": cell, "hidden": hidden, "streams": streams}
    kind = args.broker_kind or ("kafka" if args.broker is not None else _default_kind())
    # Tansu's quirks only in its own profile; Apache Kafka (ours or --broker) with the production one
    prof = args.profile or ("tansu" if kind == "tansu" and args.broker is None else "production")
    print(f"seqstream bench on {'the broker at ' + args.broker if args.broker else 'a local ' + kind} ({prof} profile)")
    with _broker(args.broker, kind) as broker:
        bs = broker.bootstrap
        pid = broker.proc.pid if broker.proc is not None else None
        parts = args.partitions
        run_id = uuid.uuid4().hex[:6]
        t_raw, t_out = f"raw-out-{run_id}", f"pred-{run_id}"
        create_topics(bs, [t_raw], partitions=parts)
        bmax = max(args.batch_max)
        seq: dict[str, Any] = {}
        for st in sorted(args.streams, key=lambda k: k != streams):  # the primary stream count first
            t_in = f"in-{run_id}-{st}"
            create_topics(bs, [t_in], partitions=parts)
            msgs = _sensor_messages(st, n, time.time() - 86400.0, 1e-3)
            prate = asyncio.run(_produce_backlog(bs, t_in, msgs))
            del msgs
            here = {"cell": cell, "hidden": hidden, "streams": st}
            _emit({"scenario": "produce_backlog", "events": n, "events_per_s": round(prate), **here}, records)
            if st == streams:
                raw = asyncio.run(_raw_passthrough(bs, t_in, t_raw, n, bmax, pid))
                _emit({"scenario": "raw_passthrough", "batch_max": bmax, "round": 0, **raw, **here}, records)
                # the serial floor (each batch's acks before the next fetch): a second row, never the ratio's base
                raw = asyncio.run(_raw_passthrough(bs, t_in, t_raw, n, bmax, pid, pipelined=False))
                _emit({"scenario": "raw_passthrough_serial", "batch_max": bmax, **raw, **here}, records)
            matrix = [(c, h) for c in args.cell for h in args.hidden]
            if st == streams and (cell, hidden) not in matrix:
                matrix.insert(0, (cell, hidden))  # the shipped detector: the primary configuration
            for c, h in matrix:
                primary = (st, c, h) == (streams, cell, hidden)
                for bm in args.batch_max if primary else [bmax]:
                    # every drain: a fresh consumer group over the backlog and its own output topics
                    # (and so its own state changelog: a second drain must not restore the first one's
                    # snapshots and treat the backlog as already processed)
                    out = f"{t_out}-{st}-{c}{h}-{bm}"
                    create_topics(bs, [f"{out}{sfx}" for sfx in ("", "-alerts", "-dead")], partitions=parts)
                    res = asyncio.run(_seqstream_drain(_settings(bs, t_in, out, bm, prof), n, c, h, pid))
                    row = {"cell": c, "hidden": h, "streams": st, "primary": primary}
                    if primary:
                        row["round"] = 0
                    _emit(
                        {"scenario": "seqstream", "mode": "engine in-process", "batch_max": bm, **res, **row},
                        records,
                    )
                    if primary and res["events_per_s"] > seq.get("events_per_s", 0.0):
                        seq = {**res, "batch_max": bm}
                if primary:  # more rounds now, before the rest of the matrix fills the broker
                    _more_rounds(args, bs, pid, prof, t_in, t_raw, f"{t_out}-{st}-{c}{h}", seq, common, records)
                    if prof == "production" and args.exactly_once:  # the cost of transactions, same backlog
                        bm, out = seq["batch_max"], f"{t_out}-{st}-{c}{h}-eos"
                        create_topics(bs, [f"{out}{sfx}" for sfx in ("", "-alerts", "-dead")], partitions=parts)
                        eos = _settings(bs, t_in, out, bm, prof, guarantee="exactly_once")
                        res = asyncio.run(_seqstream_drain(eos, n, c, h, pid))
                        row = {"cell": c, "hidden": h, "streams": st, "primary": False, "guarantee": "exactly_once"}
                        _emit(
                            {"scenario": "seqstream", "mode": "engine in-process", "batch_max": bm, **res, **row},
                            records,
                        )

        pe = _per_event_rates(cell, hidden, streams, args.per_event_n)
        _emit({"scenario": "per_event", **pe, **common}, records)

    # latency: the engine in a child process, this process produces and reads; then the same rates
    # through a plain pass-through child and through the broker alone (the floors). Each path on a
    # fresh broker of its own: Tansu (memory storage) answers more slowly the more it holds, and
    # the drains above leave millions of records in it
    if args.latency_seconds > 0:
        rates = [(frac, frac * seq["events_per_s"]) for frac in args.latency_fractions]
        # warm: make every stream resident so the levels measure steady state
        paths = [("latency", (min(streams * 2.0, 20000.0), streams / 10000.0 + 1.0))]
        if args.latency_raw:
            paths += [("latency_raw", (2000.0, 1.0)), ("latency_broker", (2000.0, 1.0))]
        for scenario, (warm_rate, warm_s) in paths:
            with _broker(args.broker, kind) as lb:  # (on a broker of your own: the same one, new topics)
                lbs, t_lin, t_lout = lb.bootstrap, f"{scenario}-in-{run_id}", f"{scenario}-out-{run_id}"
                target: Any = None
                child_args: tuple[Any, ...] = ()
                wait = 5  # the reader of an output topic: short, so it adds little latency of its own
                if scenario == "latency":
                    outs = [f"{t_lout}{sfx}" for sfx in ("", "-alerts", "-dead")]
                    create_topics(lbs, [t_lin, *outs], partitions=args.partitions)
                    ls = _settings(lbs, t_lin, t_lout, seq["batch_max"], prof)
                    target, child_args = _latency_child, (ls.model_dump_json(), cell, hidden)
                elif scenario == "latency_raw":
                    create_topics(lbs, [t_lin, t_lout], partitions=args.partitions)
                    target, child_args = _raw_latency_child, (lbs, t_lin, t_lout, prof)
                else:  # one hop, nothing in between: the load generator's own topic read back
                    create_topics(lbs, [t_lin], partitions=args.partitions)
                    # with the engine's fetch wait: what the engine's own fetch of the input sees
                    # (a 5 ms poll on the generator's many small batches costs Tansu more than it saves)
                    t_lout, wait = t_lin, _settings(lbs, t_lin, t_lin, 4096, prof).fetch_wait_ms
                lpid = lb.proc.pid if lb.proc is not None else None
                for frac, lv in _latency_levels(
                    target,
                    child_args,
                    lbs,
                    t_lin,
                    t_lout,
                    streams,
                    rates,
                    args.latency_seconds,
                    warm_rate,
                    warm_s,
                    lpid,
                    wait,
                ):
                    _emit({"scenario": scenario, "fraction_of_max": frac, **lv, **common}, records)

    if args.demo_mix > 0:  # the demo's five sources at its real-time rates, on a fresh broker of its own
        mix = demo_mix(kind, args.broker, args.demo_mix, warmup=min(10.0, args.demo_mix))
        _emit({"scenario": "demo_mix", **mix}, records)

    if args.step_batches:
        for r in _step_cells(cell, hidden, args.step_batches, args.step_budget):
            _emit({"scenario": "model_step", **r, "cell": cell, "hidden": hidden}, records)

    ctx = mp.get_context("spawn")
    for m in args.memory_streams:
        q = ctx.Queue()
        pr = ctx.Process(target=_memory_child, args=(m, cell, hidden, q))
        pr.start()
        res = q.get(timeout=300)
        pr.join(30)
        _emit({"scenario": "memory", **res, "cell": cell, "hidden": hidden}, records)

    print(markdown(records, time.time() - t_start))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(records, indent=1))
    return 0


def _more_rounds(
    args: argparse.Namespace,
    bs: str,
    pid: int | None,
    prof: str,
    t_in: str,
    t_raw: str,
    out_prefix: str,
    seq: dict[str, Any],
    common: dict[str, Any],
    records: list[dict[str, Any]],
) -> None:
    """Rounds 2.. of (raw pass-through, primary drain at its best batch_max), alternating, so the
    ratio is a median over pairs measured a minute apart rather than one pair of drains. They run
    right after the first round, while the broker holds no more than the primary backlog."""
    from stream.admin import create_topics

    bmax, bm = max(args.batch_max), seq["batch_max"]
    for rnd in range(1, args.rounds):
        raw = asyncio.run(_raw_passthrough(bs, t_in, t_raw, args.events, bmax, pid))
        _emit({"scenario": "raw_passthrough", "batch_max": bmax, "round": rnd, **raw, **common}, records)
        out = f"{out_prefix}-{bm}-r{rnd}"
        create_topics(bs, [f"{out}{sfx}" for sfx in ("", "-alerts", "-dead")], partitions=args.partitions)
        res = asyncio.run(
            _seqstream_drain(_settings(bs, t_in, out, bm, prof), args.events, common["cell"], common["hidden"], pid)
        )
        row = {"scenario": "seqstream", "mode": "engine in-process", "batch_max": bm, **res, **common}
        _emit({**row, "primary": True, "round": rnd}, records)


def _fill_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """The options left unset (None) get their defaults, the smaller ones with ``--quick``."""
    q = args.quick
    if args.cell is None:
        args.cell = ["gru"] if q else ["gru", "lstm"]
    if args.hidden is None:
        args.hidden = [64] if q else [64, 128]
    if args.streams is None:
        args.streams = [10000] if q else [1000, 10000, 100000]
    for name in ("streams", "cell", "hidden"):  # a value given twice is drained once
        setattr(args, name, list(dict.fromkeys(getattr(args, name))))
    if args.rounds is None:
        args.rounds = 1 if q else 3
    if args.events is None:
        args.events = 50_000 if q else 200_000
    if args.latency_seconds is None:
        args.latency_seconds = 4.0 if q else 10.0
    if args.demo_mix is None:
        args.demo_mix = 10.0 if q else 30.0
    if args.step_batches is None:
        args.step_batches = [64, 1024] if q else [1, 64, 1024, 4096]
    if args.memory_streams is None:
        args.memory_streams = [100_000] if q else [100_000, 1_000_000]
    return args
