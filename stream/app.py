"""The Faust app of a seqstream worker: ``faust -A stream.app worker`` or ``seqstream worker``.

Design choice — a batch-native input path under Faust's lifecycle. The app owns one
:class:`~stream.engine.BatchEngine` service: an aiokafka consumer (its own consumer group,
``Settings.group_id``) whose ``getmany`` micro-batches are decoded in bulk, run through each
source's :class:`~stream.pipeline.SourcePipeline` (one ``runner.process`` call per source and
batch: the per-source "agents"), produced with one ``send_batch`` per output partition and
committed after the broker acknowledged the outputs.

Faust's per-event stream path (``@app.agent`` + ``stream.take``) was measured at ~5k events/s per
worker with ~1.3 s p50 latency (its hard-coded 1.5 s ``fetch_max_wait_ms``) and it skipped records
across rebalances; the batch path reaches the aiokafka ceiling instead (see ``stream/engine.py``).
Faust still provides the worker command, signal handling, logging, the web server (``/metrics``)
and the service tree, so tables, timers and pages can be added to this app as usual.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faust
from mode import Service

from models.errors import SeqstreamError

from .metrics import Metrics
from .settings import Settings, load_settings

if TYPE_CHECKING:
    from .engine import BatchEngine

__all__ = ["create_app", "readiness"]

log = logging.getLogger(__name__)

# prometheus_client's CONTENT_TYPE_LATEST without the charset parameter (aiohttp adds it itself)
_CONTENT_TYPE = "text/plain; version=0.0.4"


def create_app(settings: Settings | None = None, metrics: Metrics | None = None) -> faust.App:
    """Build the worker app; models load when the worker starts, not here.

    Example:
        >>> app = create_app(Settings(broker_url="kafka://127.0.0.1:9092"))
        >>> app.conf.id
        'seqstream'
    """
    settings_ = settings or load_settings()
    metrics_ = metrics or Metrics()
    return _build(settings_, metrics_)


def _build(settings: Settings, metrics: Metrics) -> faust.App:
    datadir = Path(tempfile.gettempdir()) / f"seqstream-{settings.app_id}"
    app = faust.App(
        settings.app_id,
        autodiscover=False,
        datadir=str(datadir),
        topic_disable_leader=True,
        **settings.faust_kwargs(),
    )

    core_ref: dict[str, Any] = {}  # {"engine": BatchEngine} once started, for the control agent
    # Faust's own consumer group needs at least one subscription; the control topic gives it a
    # small real job: operator commands such as
    # {"command": "evict", "source": "sensors", "streams": ["pump-7"]} (forget a stream's state).
    control = app.topic(settings.topic_control, value_type=bytes, value_serializer="raw", partitions=1)

    class CoreService(Service):
        """Loads a Runner per source and runs the batch engine inside the worker.

        A stop may come in any phase (Faust stops its services on SIGTERM/SIGINT): while models load,
        the start returns at the next source; while the engine connects, its start is cancelled; once
        it runs, :meth:`BatchEngine.stop` settles, snapshots and leaves its group within its budget.
        """

        engine: BatchEngine | None = None
        _starting: asyncio.Task[None] | None = None

        async def on_start(self) -> None:
            from .engine import BatchEngine
            from .pipeline import SourcePipeline, build_runner

            # a Kafka broker creates no topic on subscription (auto-creation only answers producers' metadata)
            await control.maybe_declare()

            if settings.torch_threads:  # before the models load: their first kernels start the thread pool
                import torch

                torch.set_num_threads(settings.torch_threads)
            pipelines: dict[str, SourcePipeline] = {}
            for source in settings.sources:  # each source's model: stream/sources/<source>.py
                await asyncio.sleep(0)  # a signal that came while the previous model loaded is handled here
                if self.should_stop:
                    log.info("stop requested while loading models; not starting the engine")
                    return
                runner = build_runner(settings, source)
                log.info(
                    "source %s: model %s, %d feature(s), device %s, threshold %.3f",
                    source,
                    runner.model_id,
                    runner.n_features,
                    runner.device,
                    runner.threshold,
                )
                pipelines[source] = SourcePipeline(source, runner, settings, metrics)
            if self.should_stop:
                return
            self.engine = BatchEngine(settings, pipelines, metrics)
            core_ref["engine"] = self.engine
            # its own task, so that a stop can cancel a start that waits on the brokers (on_stop)
            self._starting = asyncio.ensure_future(self.engine.start())
            try:
                await asyncio.shield(self._starting)
            except asyncio.CancelledError:
                if not self.should_stop:
                    raise
                log.info("stop requested while the engine started; not consuming")
            finally:
                self._starting = None

        @Service.task
        async def _consume(self) -> None:
            if self.engine is None or self.should_stop:
                return
            try:
                await self.engine.run()
            except SeqstreamError as exc:
                # a refusal the operator configured (SEQSTREAM_ON_MODEL_CHANGE=refuse, ...): a graceful stop,
                # and `seqstream worker` says it in one line with exit 2, not as a crashed service's traceback
                app.seqstream_fatal = exc  # type: ignore[attr-defined]
                os.kill(os.getpid(), signal.SIGTERM)

        async def on_stop(self) -> None:
            starting = self._starting
            if starting is not None and not starting.done():
                starting.cancel()
                await asyncio.wait([starting], timeout=2.0)
            if self.engine is not None:
                await self.engine.stop()

    app.service(CoreService)

    from .stopping import leave_faust_join, start_stop_watchdog

    @app.on_before_shutdown.connect
    async def _bounded_stop(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """The first step of a stop: arm the last-resort deadline, end a join of Faust's own consumer."""
        start_stop_watchdog(settings.stop_timeout_s)
        await leave_faust_join(app)

    @app.agent(control, name="seqstream.control")
    async def control_agent(stream: Any) -> None:
        async for value in stream:
            handle_control(value, core_ref)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type=_CONTENT_TYPE)

    @app.page("/health")
    async def health_page(web: Any, request: Any) -> Any:
        """200 while the input consumer runs (readiness/liveness probes), 503 otherwise.

        A broker outage keeps 200 (restarting the worker would not help; it reconnects by itself)
        but says ``"status": "broker_unreachable"`` and ``"broker_connected": false``.
        """
        up = metrics.consumer_up
        connected = bool(metrics.broker_connected._value.get())
        status = ("ok" if connected else "broker_unreachable") if up else "starting_or_down"
        body = {"status": status, "consumer_up": up, "broker_connected": connected}
        return web.json(body, status=200 if up else 503)

    @app.page("/ready")
    async def ready_page(web: Any, request: Any) -> Any:
        """200 once this worker owns its partitions with their state restored; 503 with the reason before."""
        status, body = readiness(core_ref.get("engine"), metrics)
        return web.json(body, status=status)

    # the stream explorer: /explorer (page), /api/streams, /api/streams/{id} (stream/explorer/), served
    # as SEQSTREAM_EXPLORER, _HOST, _PORT and _TOKEN say (off, its own bind, a bearer token)
    from .explorer import register_routes

    register_routes(app, core_ref, settings)

    app.seqstream_fatal = None  # type: ignore[attr-defined]  # a SeqstreamError that stopped the engine
    app.seqstream_settings = settings  # type: ignore[attr-defined]
    app.seqstream_metrics = metrics  # type: ignore[attr-defined]
    return app


_NOT_READY = {
    "starting": "the worker is loading its models and connecting its input consumer",
    "stopping": "the worker is stopping",
    "broker_unreachable": "no live connection to the Kafka cluster; the worker keeps retrying",
    "joining": "the input consumer is joining its consumer group (waiting for an assignment)",
    "restoring": "the assigned partitions' state is being restored from the changelog and replayed",
}


def readiness(engine: Any, metrics: Metrics) -> tuple[int, dict[str, Any]]:
    """``/ready``: (200, ...) once the input consumer has its assignment and the assigned partitions'
    state is restored (snapshot loaded and the input below the committed offset replayed); else
    (503, ``{"ready": false, "reason": starting|stopping|broker_unreachable|joining|restoring}``).

    Example:
        >>> readiness(None, Metrics())[1]["reason"]
        'starting'
    """
    stopping = engine is not None and getattr(getattr(engine, "_stopping", None), "is_set", lambda: False)()
    phase = getattr(getattr(engine, "state", None), "phase", "joining")
    if stopping:
        reason = "stopping"
    elif engine is None or not metrics.consumer_up:
        reason = "starting"
    elif not metrics.broker_connected._value.get():
        reason = "broker_unreachable"
    elif phase != "assigned":
        reason = phase if phase in _NOT_READY else "joining"
    elif engine.state.replaying:
        reason = "restoring"
    else:
        reason = ""
    assigned = int(metrics.assigned_partitions._value.get())
    if not reason:
        return 200, {"ready": True, "status": "ready", "assigned_partitions": assigned}
    return 503, {
        "ready": False,
        "status": reason,
        "reason": reason,
        "message": _NOT_READY[reason],
        "assigned_partitions": assigned,
    }


def handle_control(value: bytes | None, registry: dict[str, Any]) -> str:
    """Apply one control command; a bad command is logged and ignored, never raised."""
    import orjson

    try:
        cmd = orjson.loads(value or b"")
        if not isinstance(cmd, dict):
            raise ValueError("a control command is a JSON object")
        name = cmd.get("command")
        engine = registry.get("engine")
        if name == "ping":
            log.info("control: ping")
            return "pong"
        if name == "evict":
            if engine is None:
                raise ValueError("the engine is not running yet")
            pipe = engine.pipelines.get(cmd.get("source"))
            streams = cmd.get("streams")
            if pipe is None or not isinstance(streams, list):
                raise ValueError("evict needs 'source' (a served source) and 'streams' (a list of ids)")
            n = pipe.runner.slab.evict([str(x) for x in streams])
            log.info("control: evicted %d stream(s) of %s", n, cmd.get("source"))
            return f"evicted {n}"
        raise ValueError(f"unknown command {name!r}; known: ping, evict")
    except Exception as exc:
        log.warning("control: ignored bad command (%s)", exc)
        return f"error: {exc}"


def __getattr__(name: str) -> Any:
    # ``faust -A stream.app`` looks up ``stream.app:app``; build it lazily from the environment
    if name == "app":
        globals()["app"] = a = create_app()
        return a
    raise AttributeError(name)
