"""A stop that finishes in time whatever the worker is doing: starting, joining, restoring, rebalancing, running.

Faust's worker turns SIGTERM/SIGINT into a stop of its services; the steps here bound it by
``SEQSTREAM_STOP_TIMEOUT_S``. The batch engine's stop (:func:`stop_engine`) settles the outputs in
flight, commits, takes a final snapshot and leaves its group, each step with what is left of its
budget (:class:`StopBudget`). A consumer group join is left at once (:func:`leave_group_now`):
aiokafka's ``stop()`` would wait for the JoinGroup answer, which the broker sends only when the
whole group has rejoined, up to a dead member's session timeout (the reported minute-long hang).
Behind them, a watchdog (:func:`start_stop_watchdog`) ends the process if all else fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable
from typing import Any

__all__ = [
    "StopBudget",
    "in_group_join",
    "leave_faust_join",
    "leave_group_now",
    "start_stop_watchdog",
    "stop_engine",
]

log = logging.getLogger(__name__)


class StopBudget:
    """The seconds left of a stop, shared by its steps; a step that fails or overruns is logged and left behind."""

    def __init__(self, seconds: float) -> None:
        self.deadline = asyncio.get_running_loop().time() + seconds

    def left(self, share: float = 1.0) -> float:
        """``share`` of what is left (at least 0.1 s: every step gets a chance)."""
        return max(0.1, (self.deadline - asyncio.get_running_loop().time()) * share)

    async def step(self, what: str, aw: Awaitable[Any], share: float = 0.5) -> None:
        try:
            await asyncio.wait_for(aw, self.left(share))
        except TimeoutError:
            log.warning("stop: %s did not finish in time; going on (at-least-once: what it held is re-delivered)", what)
        except Exception as exc:
            log.warning("stop: %s failed (%s); going on", what, exc)

    async def acquire(self, lock: asyncio.Lock, share: float = 0.5) -> bool:
        try:
            await asyncio.wait_for(lock.acquire(), self.left(share))
        except TimeoutError:
            return False
        return True


async def stop_engine(engine: Any, seconds: float) -> None:
    """Stop a :class:`~stream.engine.BatchEngine`'s clients gracefully within ``seconds``.

    The batch in flight finishes, the outputs awaiting acks are settled and their offsets
    committed, the owned partitions get a final snapshot (at-least-once; exactly_once snapshots
    commit with their batches), the consumer leaves its group, the producers flush and close. A
    restore in progress is abandoned at once (the next owner restores those partitions again).
    """
    budget = StopBudget(seconds)
    lock: asyncio.Lock = engine._lock  # the run loop's and the rebalance hooks' lock (stream.engine)
    locked = False if engine._restoring else await budget.acquire(lock)
    if not locked and engine.consumer is not None:
        log.warning("stop: a rebalance or restore still runs; abandoning it to stop in time")
        await leave_group_now(engine.consumer, timeout=budget.left(0.3))  # its callbacks end with the join
        locked = await budget.acquire(lock, 0.3)
    try:
        engine.metrics.up.set(0)
        if locked:
            await budget.step("settling the outputs in flight", engine.settle(0))
            if engine.txns is None and engine.state.parts:
                await budget.step("the final snapshot", engine.state.snapshot(list(engine.state.parts)), 0.6)
        if engine.consumer is not None:
            # a join or rebalance in progress ends now instead of when the whole group has rejoined
            await leave_group_now(engine.consumer, timeout=budget.left(0.3))
            await budget.step("leaving the consumer group", engine.consumer.stop())
        await budget.step("the state snapshots on their way", engine.state.stop())
        if engine.txns is not None:
            await budget.step("closing the transactions", engine.txns.close())
        for p in (engine.producer, engine.state_producer):
            if p is not None:
                await budget.step("stopping a producer", p.stop())
    finally:
        if locked:
            lock.release()


def in_group_join(consumer: Any) -> bool:
    """Whether an aiokafka consumer is joining its group (first join or a rebalance), from its coordinator."""
    coord = getattr(consumer, "_coordinator", None)
    task = getattr(coord, "_coordination_task", None)
    if task is None or task.done():
        return False
    return bool(getattr(coord, "_performed_join_prepare", False)) or getattr(coord, "generation", 0) < 0


async def leave_group_now(consumer: Any, timeout: float = 3.0) -> None:
    """End an aiokafka consumer's group membership at once, mid-join included; then ``consumer.stop()`` is quick.

    aiokafka's ``stop()`` waits for its coordination task, and a JoinGroup in flight is answered by
    the broker only when the whole group has rejoined, which can take the session timeout of a
    member that died (the reported stop that hung for a minute). Cancelling that task ends the join
    (and a rebalance callback running in it: a restore is abandoned, the partition is restored by its
    next owner). A member caught in a join leaves with its own LeaveGroup, so the group does not wait
    for it either; a member of a settled generation leaves in ``stop()`` as usual.
    """
    coord = getattr(consumer, "_coordinator", None)
    task = getattr(coord, "_coordination_task", None)
    if coord is None or task is None:
        return
    joining = in_group_join(consumer)
    if not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=timeout)
    member = getattr(coord, "member_id", "")
    if joining and member and getattr(coord, "coordinator_id", None) is not None:
        from aiokafka.protocol.group import LeaveGroupRequest

        with contextlib.suppress(Exception, asyncio.TimeoutError):
            # not on the coordination connection: the broker answers a connection's requests in order, and
            # that one still waits for the JoinGroup's answer
            req = LeaveGroupRequest(coord.group_id, member)
            await asyncio.wait_for(coord._client.send(coord.coordinator_id, req), timeout)
            log.info("left group %s while joining", coord.group_id)
        coord.reset_generation()  # stop() must not leave again (on the connection that still waits)


_watchdog: threading.Timer | None = None


def start_stop_watchdog(timeout: float) -> None:
    """Exit the process ``timeout`` seconds from now if the graceful stop has not finished by then.

    The last resort behind the bounded steps of the stop (``SEQSTREAM_STOP_TIMEOUT_S``), so that an
    orchestrator's grace period never ends in a SIGKILL: outputs not yet acknowledged are re-sent
    by the next owner (at-least-once), so exiting is safe, only less tidy (no LeaveGroup).
    """
    global _watchdog
    if _watchdog is not None:
        return

    def expire() -> None:
        log.error(
            "stop did not finish within SEQSTREAM_STOP_TIMEOUT_S=%g s; exiting now (inputs not committed are "
            "re-delivered to the next owner)",
            timeout,
        )
        logging.shutdown()
        os._exit(1)

    _watchdog = threading.Timer(timeout, expire)
    _watchdog.daemon = True  # a stop that finishes ends the process; the timer must not keep it alive
    _watchdog.start()


async def leave_faust_join(app: Any) -> None:
    """End a group join of Faust's own consumer (its control topic's group) in its thread.

    aiokafka's ``stop()`` waits for a JoinGroup in flight, which the broker answers only once the
    whole group has rejoined (a dead member's session timeout: the stop that hung for a minute).
    """
    thread = getattr(getattr(app, "_consumer", None), "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    loop = getattr(thread, "thread_loop", None)
    if consumer is None or loop is None or not loop.is_running() or not in_group_join(consumer):
        return
    log.info("stop: Faust's consumer is joining its group; leaving the join")
    fut = asyncio.run_coroutine_threadsafe(leave_group_now(consumer, timeout=2.0), loop)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.wrap_future(fut), 3.0)
