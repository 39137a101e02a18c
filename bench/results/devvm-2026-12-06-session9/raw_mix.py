"""Experiment: the raw ceiling at the demo's rates. The demo mix (the same simulators, rates, topics and
broker as ``stream.tools.bench.demo_mix``) served by a plain aiokafka pass-through child instead of a
seqstream worker: the worker's fetch hold (64 KiB or 30 ms), one output per input with one ``send_batch``
per partition, acks awaited one batch later, offsets committed after their acks every 0.25 s. Prints
the child's CPU µs per event over the same window (process CPU from /proc).

    .venv/bin/python bench/results/devvm-2026-12-06-session9/raw_mix.py [SECONDS] [WARMUP] [FETCH_WAIT_MS]
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

CHILD = r"""
import asyncio, sys, time
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
bootstrap, topics, out = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
wait_ms, count_file = int(sys.argv[4]), sys.argv[5]

async def main():
    c = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id="raw-mix", enable_auto_commit=False,
                         auto_offset_reset="earliest", fetch_max_wait_ms=wait_ms, fetch_min_bytes=64 << 10,
                         max_partition_fetch_bytes=4 << 20)
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, max_batch_size=1 << 20, acks="all")
    await p.start(); await c.start()
    done = 0; pending = None; to_commit = {}; last = 0.0; last_write = 0.0
    while True:
        data = await c.getmany(timeout_ms=200, max_records=1024)
        if not data:
            continue
        futs = []; offsets = {}
        for tp, recs in data.items():
            b = p.create_batch()
            for r in recs:
                if b.append(key=r.key, value=r.value, timestamp=None) is None:
                    futs.append(await p.send_batch(b, out, partition=tp.partition))
                    b = p.create_batch(); b.append(key=r.key, value=r.value, timestamp=None)
            if b.record_count():
                futs.append(await p.send_batch(b, out, partition=tp.partition))
            offsets[tp] = recs[-1].offset + 1
            done += len(recs)
        if pending is not None:
            await asyncio.gather(*pending[0])
            to_commit.update(pending[1])
        pending = (futs, offsets)
        now = time.monotonic()
        if to_commit and now - last >= 0.25:
            last = now
            await c.commit(to_commit); to_commit = {}
        if now - last_write >= 0.5:
            last_write = now
            with open(count_file, "w") as f:
                f.write(str(done))
asyncio.run(main())
"""


def main(seconds: float, warmup: float, wait_ms: int) -> None:
    from stream.admin import create_topics
    from stream.settings import load_settings
    from stream.tools.bench.drain import _broker, _cpu_seconds
    from stream.tools.demo import demo_plan
    from stream.tools.produce import produce

    sources = "sensors,speech,ticks,machines,audio"
    with _broker(None, "kafka") as b:
        run = uuid.uuid4().hex[:6]
        settings = load_settings(
            broker_url=f"kafka://{b.bootstrap}",
            profile="production",
            sources=sources,
            topics={s: f"{s}-{run}" for s in sources.split(",")},
            topic_predictions=f"predictions-{run}",
        )
        topics = [settings.topic(s) for s in settings.sources]
        create_topics(settings.bootstrap_servers, [*topics, settings.topic_predictions], 8, 1)
        count_file = f"/tmp/raw_mix_{run}.count"
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                b.bootstrap,
                ",".join(topics),
                settings.topic_predictions,
                str(wait_ms),
                count_file,
            ]
        )
        try:
            time.sleep(3.0)
            sims, rates = demo_plan(settings, warmup + seconds + 15.0)

            def count() -> int:
                try:
                    with open(count_file) as f:
                        return int(f.read() or 0)
                except OSError:
                    return 0

            async def feed() -> dict[str, float]:
                stop = asyncio.Event()
                tasks = [
                    asyncio.create_task(
                        produce(
                            settings.bootstrap_servers,
                            settings.topic(s),
                            sim,
                            rate=rates[s],
                            seconds=warmup + seconds,
                            stop=stop,
                        )
                    )
                    for s, sim in sims.items()
                ]
                await asyncio.sleep(warmup)
                n0, c0, t0 = count(), _cpu_seconds(child.pid), time.monotonic()
                await asyncio.sleep(seconds)
                await asyncio.sleep(0.6)  # the count file is written every 0.5 s
                n1, c1, t1 = count(), _cpu_seconds(child.pid), time.monotonic()
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                ev = n1 - n0
                return {
                    "events": ev,
                    "events_per_s": round(ev / (t1 - t0), 1),
                    "raw_cpu_us_per_event": round((c1 - c0) / max(ev, 1) * 1e6, 1),
                    "raw_cores": round((c1 - c0) / (t1 - t0), 3),
                    "target_rate": round(sum(rates.values())),
                }

            print(asyncio.run(feed()), flush=True)
        finally:
            child.kill()
            child.wait()


if __name__ == "__main__":
    a = sys.argv[1:]
    main(float(a[0]) if a else 30.0, float(a[1]) if len(a) > 1 else 10.0, int(a[2]) if len(a) > 2 else 30)
