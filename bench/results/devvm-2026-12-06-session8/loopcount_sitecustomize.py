"""Experiment: count the asyncio callbacks a process runs, by callback (a task by its coroutine).

Put this folder (a copy named sitecustomize.py) on PYTHONPATH with LOOPCOUNT_OUT=PREFIX: every
Python process started with that environment (the demo mix and its worker child) writes its counts
to PREFIX.PID every 5 s, e.g.

    mkdir /tmp/hook && cp loopcount_sitecustomize.py /tmp/hook/sitecustomize.py
    LOOPCOUNT_OUT=/tmp/loopcount PYTHONPATH=/tmp/hook .venv/bin/python -c \
        "from stream.tools.bench.demo_mix import demo_mix; print(demo_mix('kafka', None, 30, 10))"
"""

import os

if os.environ.get("LOOPCOUNT_OUT"):
    import asyncio.events
    import collections
    import threading
    import time

    counts = collections.Counter()
    orig = asyncio.events.Handle._run

    def name(cb):
        try:
            owner = getattr(cb, "__self__", None)
            if owner is not None and hasattr(owner, "get_coro"):
                c = owner.get_coro()
                return "task:" + getattr(c, "__qualname__", repr(c))
            if owner is not None:
                return type(owner).__qualname__ + "." + getattr(cb, "__name__", "?")
            return getattr(cb, "__qualname__", repr(cb))
        except Exception:
            return "err"

    def _run(self):
        counts[name(self._callback)] += 1
        return orig(self)

    asyncio.events.Handle._run = _run
    t0 = time.time()

    def dump():
        while True:
            time.sleep(5)
            with open(os.environ["LOOPCOUNT_OUT"] + f".{os.getpid()}", "w") as f:
                el = time.time() - t0
                f.write(f"elapsed {el:.1f}\n")
                for k, v in counts.most_common(40):
                    f.write(f"{v:8d} {v / el:8.1f}/s {k}\n")

    threading.Thread(target=dump, daemon=True).start()
