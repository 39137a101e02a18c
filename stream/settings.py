"""Every knob of the streaming side in one file (the generated settings table reads it), from ``SEQSTREAM_*``.

One frozen :class:`Settings` object is built at start-up (``Settings()`` or
:func:`load_settings` with command-line overrides) and passed down; nothing else reads the
environment.

Profiles: ``production`` (the default) is for Apache Kafka and every broker that behaves like it:
Kafka's own client defaults. ``tansu`` (``embedded`` is an older name of it) is the one home of
every workaround for the Tansu broker that ``seqstream demo`` starts: a short group
session/heartbeat (Tansu completes a join only after ``session_timeout / 2``), a short fetch wait
(Tansu holds an empty long-poll fetch for about half of ``fetch_max_wait``), changelog records sent
one per record batch (Tansu's ListOffsets is wrong after multi-record batches) and no
``exactly_once`` (Tansu has no transactions). None of them applies on the production path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from models.errors import CheckpointError, ConfigError

from .sources import SOURCES

__all__ = ["Settings", "load_settings"]

_PER_SOURCE = ("topic", "checkpoint")  # SEQSTREAM_TOPIC_<SOURCE>, SEQSTREAM_CHECKPOINT_<SOURCE>


class _PerSourceEnv(PydanticBaseSettingsSource):
    """``SEQSTREAM_TOPIC_<SOURCE>`` and ``SEQSTREAM_CHECKPOINT_<SOURCE>`` of every registered source,
    as ``topic_<source>`` / ``checkpoint_<source>`` keys (folded into ``topics`` / ``checkpoints``):
    a new source file brings its own variables without a field here."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith("SEQSTREAM_")}
        out: dict[str, Any] = {}
        for name in SOURCES:
            for kind in _PER_SOURCE:
                value = env.get(f"SEQSTREAM_{kind.upper()}_{name.upper()}")
                if value:
                    out[f"{kind}_{name}"] = value
        return out


class Settings(BaseSettings):
    """Frozen settings of a seqstream worker, demo or simulator.

    Example:
        >>> s = Settings(broker_url="kafka://k1:9092,k2:9092", profile="tansu")
        >>> s.bootstrap_servers
        ['k1:9092', 'k2:9092']
        >>> s.fetch_wait_ms, s.broker_session_timeout
        (20, 6.0)
        >>> Settings(broker_url="kafka://k1:9092").broker_session_timeout  # Kafka's default
        45.0
    """

    model_config = SettingsConfigDict(env_prefix="SEQSTREAM_", frozen=True, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _PerSourceEnv(settings_cls), dotenv_settings, file_secret_settings

    profile: Literal["production", "tansu"] = Field(
        default="production",
        description="`production`: Apache Kafka's client defaults; `tansu`: every workaround for the Tansu broker of "
        "the demo (short group/fetch timings, one changelog record per batch, no exactly_once); `embedded` is its "
        "old name",
    )
    guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="`at_least_once`: outputs may repeat after a crash or rebalance (same id, same content); "
        "`exactly_once`: each micro-batch's outputs, input offsets and state snapshots commit in one Kafka "
        "transaction per input partition (needs a broker with transactions; docs/reliability.md)",
    )

    # broker connection
    broker_url: str | None = Field(
        default=None,
        description="bootstrap brokers, `kafka://host:port[,host:port...]`; unset: `seqstream demo` starts an "
        "embedded Tansu broker",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol of every client (consumer, producer, admin)"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism (SASL_* protocols); unset: `PLAIN`"
    )
    sasl_username: str | None = Field(default=None, description="SASL user name (keep it in a Secret)")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (a secret: masked in logs; keep it in a Secret)"
    )
    ssl_cafile: Path | None = Field(
        default=None, description="PEM CA bundle to verify the brokers (SSL/SASL_SSL); unset: the system CAs"
    )
    ssl_certfile: Path | None = Field(default=None, description="PEM client certificate for mutual TLS")
    ssl_keyfile: Path | None = Field(default=None, description="PEM client private key for mutual TLS")

    # topics
    topics: dict[str, str] = Field(
        default_factory=dict,
        description="input topic per source, where it is not the source's own (`SEQSTREAM_TOPIC_<SOURCE>`)",
    )
    topic_predictions: str = Field(
        default="predictions", description="output topic: one prediction per accepted input event"
    )
    topic_alerts: str = Field(
        default="anomaly-alerts", description="output topic: alert transitions (`open` / `resolved`)"
    )
    topic_dead_letter: str = Field(
        default="dead-letter", description="output topic: rejected input records with their reason and message"
    )
    topic_control: str = Field(
        default="seqstream-control", description="operator commands (e.g. evict a stream's state); one partition"
    )
    partitions: int = Field(
        default=8,
        ge=1,
        le=4096,
        description="partitions of the topics the worker or demo creates (bounds the useful number of workers)",
    )
    replication_factor: int = Field(
        default=1, ge=1, description="replication factor of the topics the worker or demo creates"
    )

    # which sources this worker serves (comma-separated in the environment)
    sources: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("sensors", "speech", "ticks", "machines"),
        description="comma-separated source kinds this worker serves (stream/sources/)",
    )

    # micro-batching
    batch_max: int = Field(
        default=1024, ge=1, le=1 << 20, description="most events per micro-batch (and per model step)"
    )
    # extra wait for a fuller batch when getmany returned fewer than batch_max (0: never wait;
    # under load the fetch buffer fills batches anyway, and waiting only adds latency)
    batch_wait_s: float = Field(
        default=0.0,
        ge=0.0,
        le=10.0,
        description="extra wait for a fuller micro-batch when a fetch returned fewer than `batch_max` (0: never wait)",
    )
    # While records flow, the broker answers a fetch only once `fetch_min_bytes` are there or
    # `fetch_max_wait_ms` passed: that is the micro-batch's size and deadline. At real-time rates a
    # fetch otherwise returns a few records, and each one costs the worker a request and a response
    # over every assigned partition, parsed in Python (issue 17: the hold cut the demo mix's CPU per
    # event by ~30 %). After a fetch that found nothing the worker asks for any byte with the idle
    # wait, so the first records after a pause come at once and an idle worker polls rarely.
    fetch_max_wait_ms: int | None = Field(
        default=None,
        ge=0,
        description="broker long-poll wait of the input consumer while records flow (the micro-batch deadline); "
        "unset: 20 ms with the tansu profile, 30 ms with production",
    )
    fetch_min_bytes: int | None = Field(
        default=None,
        ge=1,
        description="bytes the broker waits for (at most the fetch wait) before it answers a fetch while records "
        "flow; unset: 1 with the tansu profile, 64 KiB with production",
    )
    fetch_idle_wait_ms: int | None = Field(
        default=None,
        ge=0,
        description="long-poll wait after a fetch that found nothing (answered at the first byte); unset: the fetch "
        "wait with the tansu profile, 100 ms with production",
    )
    # micro-batches whose outputs may await the broker's acks while the next one is processed
    # (1: fully serial fetch -> process -> acks -> commit); offsets are committed only after acks
    inflight_batches: int = Field(
        default=2,
        ge=1,
        le=16,
        description="micro-batches whose outputs may await the broker's acks while the next one is processed "
        "(1: fully serial); input offsets are committed only after the acks",
    )
    # input offsets are committed at most this often (the acknowledged ones, in order); a stop, a
    # rebalance, an idle fetch and a snapshot commit at once. Each commit is a request to the group
    # coordinator: per micro-batch that was ~1/8 of a demo worker's CPU on this machine (issue 17)
    commit_interval_s: float = Field(
        default=0.25,
        ge=0.0,
        le=60.0,
        description="at_least_once: commit input offsets at most this often (0: after every micro-batch); a crash "
        "re-delivers at most this much more input, whose outputs repeat with the same ids",
    )
    # after the first micro-batch (models, clients and tables loaded), move every live object into
    # the collector's permanent generation (gc.freeze): full collections then stop traversing the
    # ~200k long-lived objects of torch/Faust/aiokafka on every few batches (docs/benchmarks.md)
    gc_freeze: bool = Field(
        default=True,
        description="after the first micro-batch, exempt the worker's long-lived objects from cyclic GC (gc.freeze)",
    )

    # models
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`: where the models and state "
        "slabs live; `cuda` fails at start without a GPU",
    )
    cuda_graphs: bool = Field(
        default=True,
        description="CUDA only: replay captured CUDA graphs per batch-size bucket (models/graphs.py); false: eager "
        "kernels",
    )
    compute_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32",
        description="arithmetic of the recurrent cell; state, scoring and outputs stay float32 (docs/benchmarks.md)",
    )
    checkpoints: dict[str, Path] = Field(
        default_factory=dict,
        description="model file per source, where it is not the bundled one (`SEQSTREAM_CHECKPOINT_<SOURCE>`; "
        "audio: the Silero VAD TorchScript file, unset: the installed silero-vad package's)",
    )
    vad_threshold: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="audio source: Silero VAD speech probability that opens a speech segment",
    )
    vad_min_silence_ms: float = Field(
        default=100.0, ge=0.0, description="audio source: silence that closes a speech segment, in milliseconds"
    )
    open_threshold: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="override of the checkpoint's alert open threshold (anomaly score in (0, 1]); unset: the "
        "checkpoint's own",
    )
    slab_capacity: int = Field(
        default=1024, ge=1, description="initial state-slab slots per source (streams held before the first doubling)"
    )
    slab_max_capacity: int = Field(
        default=1 << 20,
        ge=1,
        description="most state-slab slots per source; beyond it the least recently used streams are evicted",
    )

    # worker identity and web/metrics endpoint
    app_id: str = Field(
        default="seqstream", description="application id: Faust app id and the base of the consumer group"
    )
    consumer_group: str | None = Field(
        default=None, description="consumer group of the input consumer; unset: `<app_id>-core`"
    )
    web_host: str = Field(
        default="127.0.0.1",
        description="bind address of the web server (`/metrics`, `/health`, `/ready`); `0.0.0.0` in containers",
    )
    web_port: int = Field(default=6066, ge=0, le=65535, description="port of the web server (`/metrics`)")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="where a new consumer group starts reading: `earliest` or `latest`"
    )
    producer_acks: Literal["all", "1", "0"] = Field(
        default="all", description="producer acknowledgements for outputs: `all`, `1` or `0`"
    )
    producer_linger_ms: int = Field(default=2, ge=0, description="producer linger (batching delay) in milliseconds")
    explorer_points: int = Field(
        default=256,
        ge=0,
        le=65536,
        description="stream explorer (/explorer, /api/streams): recent points kept per stream (0: none)",
    )
    explorer_streams: int = Field(
        default=4096,
        ge=1,
        le=1 << 20,
        description="stream explorer: most streams buffered per source; the least recently updated are dropped "
        "beyond it",
    )

    # input limits
    max_future_s: float = Field(
        default=300.0,
        ge=0.0,
        description="events with an event time further than this in the future go to dead letter `future_timestamp`",
    )
    max_payload_bytes: int = Field(
        default=65536, ge=16, description="records larger than this go to dead letter `too_large`"
    )

    # durable state (docs/reliability.md): offset-tied partition snapshots on a changelog topic
    state_enabled: bool = Field(
        default=True,
        description="durable per-stream state: snapshots on the changelog topic, restored when a partition is "
        "assigned (docs/reliability.md); false: streams of a moved or restarted partition start pristine",
    )
    topic_state: str = Field(
        default="seqstream-state",
        description="changelog topic of the state snapshots (compacted; one key per source, input partition and chunk)",
    )
    snapshot_interval_s: float = Field(
        default=5.0,
        gt=0.0,
        description="each owned partition's streams are snapshotted to the changelog this often (seconds); a "
        "restore replays at most this much input",
    )
    snapshot_interval_events: int = Field(default=0, ge=0, description="also snapshot after this many events; 0: off")
    snapshot_dtype: Literal["fp32", "fp16"] = Field(
        default="fp32",
        description="precision of the state in snapshots: `fp32` exact, `fp16` half the bytes (restored state rounded)",
    )
    snapshot_chunk_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        le=8 << 20,
        description="a partition's snapshot is split into changelog records of at most this size (keep it under "
        "the broker's `message.max.bytes`)",
    )
    restore_timeout_s: float = Field(
        default=60.0,
        gt=0.0,
        description="longest read of the changelog when partitions are assigned; past it the newest snapshot "
        "read so far (or none) is restored, with a warning",
    )
    late_grace_s: float | None = Field(
        default=None,
        ge=0.0,
        description="an event older than its stream's last event by more than this goes to dead letter `late` "
        "(less: `out_of_order`); unset: every older event is `out_of_order`",
    )
    max_gap_s: float | None = Field(
        default=None, gt=0.0, description="a gap in event time longer than this resets the stream's state; unset: never"
    )
    max_resident_streams: int | None = Field(
        default=None,
        ge=1,
        description="streams kept on the state slab per source; beyond it the idle ones are parked off the slab "
        "and come back on their next event; unset: no bound",
    )
    # reorder buffer (docs/reliability.md, "Reorder buffer")
    reorder_grace_s: float = Field(
        default=0.0,
        ge=0.0,
        le=86400.0,
        description="> 0: hold each stream's events until its watermark (newest event time minus this) passes "
        "them, then run them in event-time order; events behind the watermark go to dead letter `late` "
        "(needs state enabled); 0: off, events run on arrival and older ones are `out_of_order`",
    )
    reorder_max_hold_s: float | None = Field(
        default=None,
        gt=0.0,
        description="a held event is released at the latest this long (processing time) after it arrived, so a "
        "quiet stream's last events are not held forever; unset: max(1 s, 2 x reorder grace)",
    )
    reorder_max_held: int = Field(
        default=200_000, ge=1, description="held events per source beyond this are released early, oldest first"
    )
    # parked streams (max_resident_streams): bounded host memory, the rest spilled to disk
    park_memory_streams: int = Field(
        default=100_000,
        ge=0,
        description="parked streams kept in host memory per source (the most recently parked); older ones spill "
        "to an SQLite file in park_dir, a cache rebuilt from the changelog on assignment",
    )
    park_dir: Path | None = Field(
        default=None, description="directory of the spilled parked state; unset: the system temp directory"
    )

    # consumer group liveness: a member that stops heartbeating for this long is dropped and its
    # partitions move (kill -9, a partitioned host); unset: Kafka's default 45 s (tansu: 6 s)
    session_timeout_s: float | None = Field(
        default=None,
        gt=0.0,
        le=1800.0,
        description="consumer-group session timeout: how long a silent worker keeps its partitions; unset: 45 s "
        "(Kafka's default), 6 s with the tansu profile",
    )

    torch_threads: int = Field(
        default=1,
        ge=0,
        le=256,
        description="torch's intra-op threads on the CPU (0: torch's default, one per core). One by default: a "
        "worker's micro-batches are small and fed by one Python thread, and idle OpenMP threads spin; on a "
        "shared 2-core host the default threads cost the demo mix 3x the CPU per event and it fell behind",
    )

    # day-2 operations (docs/operations.md): model upgrades, start and stop, explorer access
    on_model_change: Literal["rewarm", "reset", "refuse"] = Field(
        default="rewarm",
        description="what a worker does when a partition's snapshot was written by another model or scoring "
        "configuration (its fingerprint differs): `rewarm` replays retained input through the new model for "
        "state only (at most `rewarm_max_records` per partition; none retained: as `reset`), `reset` starts those "
        "streams fresh (warning + counter), `refuse` stops the worker",
    )
    rewarm_max_records: int = Field(
        default=100_000,
        ge=0,
        description="a re-warm (`on_model_change=rewarm`) replays at most this many input records of a partition, "
        "those just before its snapshot's offset; 0: all the input the topic retains",
    )
    connect_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="how long a command retries an unreachable broker at start before it stops with one line "
        "and exit 2",
    )
    stop_timeout_s: float = Field(
        default=20.0,
        gt=0.0,
        le=600.0,
        description="a stop (SIGTERM/SIGINT) in any phase (starting, joining, restoring, running) finishes within "
        "this: flush what can be flushed, leave the groups, exit 0; keep it under the orchestrator's grace "
        "period (Kubernetes: 30 s)",
    )
    explorer: bool = Field(
        default=True,
        description="on|off: serve the stream explorer (/explorer, /api/streams), which shows raw per-stream "
        "values; /metrics, /health and /ready are served either way",
    )
    explorer_host: str | None = Field(
        default=None, description="serve the explorer on its own address; unset: on web_host:web_port"
    )
    explorer_port: int | None = Field(
        default=None, ge=0, le=65535, description="serve the explorer on its own port; unset: on web_port"
    )
    explorer_token: SecretStr | None = Field(
        default=None,
        description="when set, the explorer answers only requests with `Authorization: Bearer <token>`",
    )

    @field_validator("profile", mode="before")
    @classmethod
    def _old_profile_name(cls, v: Any) -> Any:
        return "tansu" if v == "embedded" else v

    @model_validator(mode="after")
    def _guarantee_fits_the_broker(self) -> Settings:
        if self.guarantee == "exactly_once" and self.tansu:
            raise ValueError(
                "SEQSTREAM_GUARANTEE=exactly_once needs Kafka transactions, which the Tansu broker does not have; "
                "use SEQSTREAM_GUARANTEE=at_least_once with Tansu, or a Kafka broker with the production profile"
            )
        return self

    @field_validator("sources", mode="before")
    @classmethod
    def _split_sources(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(s.strip() for s in v.split(",") if s.strip())
        return v

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in v if s not in SOURCES]
        if unknown:
            raise ValueError(f"unknown source(s) {', '.join(map(repr, unknown))}; expected some of {sorted(SOURCES)}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _fold_per_source(cls, data: Any) -> Any:
        # topic_<source>= / checkpoint_<source>= (keyword or environment) into topics / checkpoints
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for kind in _PER_SOURCE:
            merged = dict(data.get(f"{kind}s") or {})
            for name in SOURCES:
                value = data.pop(f"{kind}_{name}", None)
                if value is not None:
                    merged.setdefault(name, value)
            if merged:
                unknown = sorted(set(merged) - set(SOURCES))
                if unknown:
                    raise ValueError(f"{kind}s names unknown source(s) {unknown}; expected some of {sorted(SOURCES)}")
                data[f"{kind}s"] = merged
        return data

    # ---- derived values -------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> list[str]:
        """``kafka://a:9092,b:9092`` -> ``['a:9092', 'b:9092']``."""
        if not self.broker_url:
            raise ConfigError(
                "no broker configured; set SEQSTREAM_BROKER_URL=kafka://host:port (or run `seqstream demo`)"
            )
        out = []
        for part in self.broker_url.split(","):
            part = part.strip()
            for scheme in ("kafka://", "aiokafka://", "tcp://"):
                if part.startswith(scheme):
                    part = part[len(scheme) :]
            if not part:
                continue
            host, _, port = part.rpartition(":") if ":" in part else (part, ":", "9092")
            if not host or "/" in part or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"SEQSTREAM_BROKER_URL={self.broker_url!r}: {part!r} is not host:port; expected "
                    "kafka://host:port[,host:port...]"
                )
            out.append(f"{host}:{port}")
        if not out:
            raise ConfigError(f"SEQSTREAM_BROKER_URL={self.broker_url!r} names no broker; expected kafka://host:port")
        return out

    @property
    def faust_broker(self) -> str:
        return ";".join(f"kafka://{hp}" for hp in self.bootstrap_servers)

    @property
    def group_id(self) -> str:
        """Consumer group of the batch consumer (distinct from Faust's own group ``app_id``)."""
        return self.consumer_group or f"{self.app_id}-core"

    @property
    def tansu(self) -> bool:
        """The Tansu profile: its broker's workarounds are on."""
        return self.profile == "tansu"

    @property
    def exactly_once(self) -> bool:
        return self.guarantee == "exactly_once"

    @property
    def fetch_wait_ms(self) -> int:
        """Broker long-poll wait of the input consumer."""
        if self.fetch_max_wait_ms is not None:
            return self.fetch_max_wait_ms
        return 20 if self.tansu else 30

    @property
    def fetch_min(self) -> int:
        """Bytes the broker waits for before it answers a fetch while records flow."""
        if self.fetch_min_bytes is not None:
            return self.fetch_min_bytes
        return 1 if self.tansu else 64 << 10

    @property
    def fetch_idle_wait(self) -> int:
        """Long-poll wait of a fetch after one that found nothing."""
        if self.fetch_idle_wait_ms is not None:
            return self.fetch_idle_wait_ms
        return self.fetch_wait_ms if self.tansu else 100

    @property
    def broker_session_timeout(self) -> float:
        if self.session_timeout_s is not None:
            return self.session_timeout_s
        return 6.0 if self.tansu else 45.0

    @property
    def broker_heartbeat_interval(self) -> float:
        """A third of the session timeout at most (Kafka's rule), 3 s by default (1 s on Tansu)."""
        return min(1.0 if self.tansu else 3.0, self.broker_session_timeout / 3)

    @property
    def changelog_batch_records(self) -> int:
        """Changelog records per record batch: 1 on Tansu (its ListOffsets is wrong after multi-record
        batches, so restore would stop early), unbounded on Kafka."""
        return 1 if self.tansu else 1 << 30

    def topic(self, source: str) -> str:
        """The input topic of a source: ``SEQSTREAM_TOPIC_<SOURCE>`` or the source's own."""
        return self.topics.get(source) or SOURCES[source].topic

    @property
    def input_topics(self) -> dict[str, str]:
        """Input topic -> source kind, for the sources this worker serves."""
        return {self.topic(s): s for s in self.sources}

    @property
    def output_topics(self) -> list[str]:
        return [self.topic_predictions, self.topic_alerts, self.topic_dead_letter]

    def checkpoint(self, source: str) -> Path:
        """The checkpoint file of a source; raises a :class:`CheckpointError` saying what to do."""
        src = SOURCES.get(source)
        if src is None:
            raise ConfigError(f"unknown source {source!r}; expected one of {sorted(SOURCES)}")
        configured = self.checkpoints.get(source)
        # unset: the bundled file, or where the source finds its model (a CheckpointError says what to install)
        path = Path(configured) if configured is not None else src.default_checkpoint()
        if not path.is_file():
            env = f"SEQSTREAM_CHECKPOINT_{source.upper()}"
            raise CheckpointError(
                f"checkpoint for source {source!r} not found at {path}; train one with `seqstream train` "
                f"and set {env}=/path/to/model.pt, or serve fewer sources with SEQSTREAM_SOURCES"
            )
        return path

    def kafka_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments shared by aiokafka producers, consumers and admin clients."""
        kw: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers, "security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kw["ssl_context"] = create_ssl_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
                certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
                keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
            )
        if self.security_protocol.startswith("SASL"):
            kw["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        return kw

    def faust_kwargs(self) -> dict[str, Any]:
        """Faust app configuration; the Tansu-friendly knobs only in the tansu profile."""
        kw: dict[str, Any] = {
            "broker": self.faust_broker,
            "web_host": self.web_host,
            "web_port": self.web_port,
            "web_bind": self.web_host,
            "broker_session_timeout": self.broker_session_timeout,
            "broker_heartbeat_interval": self.broker_heartbeat_interval,
            "topic_partitions": self.partitions,
            "topic_replication_factor": self.replication_factor,
            "consumer_auto_offset_reset": self.auto_offset_reset,
        }
        if self.tansu:
            kw["producer_max_batch_size"] = 1  # Tansu's ListOffsets is wrong after multi-record batches
            kw["broker_commit_interval"] = 1.0
        creds = self.faust_credentials()
        if creds is not None:  # Faust's own clients (control agent) use the same TLS/SASL settings
            kw["broker_credentials"] = creds
        return kw

    def faust_credentials(self) -> Any:
        """Faust ``broker_credentials`` from the TLS/SASL settings (``None`` for PLAINTEXT)."""
        if self.security_protocol == "PLAINTEXT":
            return None
        import faust

        ctx = self.kafka_kwargs().get("ssl_context")
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(ctx)
        return faust.SASLCredentials(
            username=self.sasl_username,
            password=self.sasl_password.get_secret_value() if self.sasl_password else None,
            ssl_context=ctx,
            mechanism=self.sasl_mechanism or "PLAIN",
        )

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict safe to log (secrets masked by pydantic's SecretStr)."""
        return {k: (str(v) if isinstance(v, SecretStr) else v) for k, v in self.model_dump().items()}


def load_settings(**overrides: Any) -> Settings:
    """Environment plus explicit overrides (``None`` values are ignored); errors become ConfigError."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            + (f" (got {e['input']!r})" if e["loc"] and not isinstance(e.get("input"), dict) else "")
            for e in exc.errors()
        )
        raise ConfigError(f"invalid seqstream settings: {problems}") from None
    except SettingsError as exc:
        raise ConfigError(f"invalid seqstream settings: {exc}") from None
