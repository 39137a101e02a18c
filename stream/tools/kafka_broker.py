"""Apache Kafka on this machine without Docker: KRaft mode, one process, from a Maven-pinned classpath.

The reference broker of the tests, the benchmarks and ``seqstream broker --kind kafka``. The
classpath is resolved once by Maven from ``deploy/kafka/pom.xml`` (Apache Kafka |version|, pinned)
into ``~/.cache/seqstream/kafka-<version>/lib``; ``SEQSTREAM_KAFKA_LIBS`` points at a directory of
jars of your own instead (for example the ``libs/`` of an unpacked Kafka distribution).

A broker is one JVM running ``kafka.Kafka`` as broker and controller on two free loopback ports,
its storage formatted with ``kafka.tools.StorageTool format --standalone``, its log in a file.
Settings are Kafka's defaults except what a one-node cluster needs (replication factors 1) and what
Kafka's own sample configuration sets for development (``group.initial.rebalance.delay.ms=0``).

Example:
    >>> with KafkaBroker() as kafka:                              # doctest: +SKIP
    ...     print(kafka.url)
    kafka://127.0.0.1:40511
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from stream.admin import BrokerError, wait_ready
from stream.tools.brokers import LocalBroker, die_with_parent, free_port

__all__ = ["KAFKA_VERSION", "KafkaBroker", "kafka_classpath"]

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"  # = kafka.version in deploy/kafka/pom.xml and the apache/kafka image in docker-compose.yml
_POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"

# a one-node cluster: every internal topic with one replica; fewer partitions of the internal topics
# than Kafka's 50 so that their creation at the first group join or transaction takes ~1 s, not ~10 s
_ONE_NODE = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "8",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "8",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    # Kafka's config/server.properties sets this for development: a lone first member joins at once
    "group.initial.rebalance.delay.ms": "0",
}

_LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.changes.name = state.change.logger
logger.changes.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _cache_dir(version: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seqstream" / f"kafka-{version}" / "lib"


def kafka_classpath(version: str = KAFKA_VERSION, *, fetch: bool = True) -> str:
    """The broker's Java classpath (``dir/*``); resolves it with Maven the first time.

    Raises :class:`BrokerError` with what to do when Java, Maven or the artifacts are missing.
    """
    own = os.environ.get("SEQSTREAM_KAFKA_LIBS")
    if own:
        d = Path(own)
        if not any(d.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"SEQSTREAM_KAFKA_LIBS={own} holds no kafka_2.13-*.jar; point it at a Kafka libs/ folder")
        return f"{d}/*"
    lib = _cache_dir(version)
    done = lib / ".complete"
    if done.is_file():
        return f"{lib}/*"
    if not fetch:
        raise BrokerError(f"Apache Kafka {version} is not resolved yet; run `make kafka-libs` (needs Maven)")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven (mvn) not found: it resolves Apache Kafka's jars once; install it (apt-get install maven), "
            "or set SEQSTREAM_KAFKA_LIBS to the libs/ folder of a Kafka distribution"
        )
    if not _POM.is_file():
        raise BrokerError(
            f"{_POM} not found (seqstream installed without its source tree); set SEQSTREAM_KAFKA_LIBS to the libs/ "
            "folder of a Kafka distribution"
        )
    lib.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(_POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={lib}",
    ]
    log.info("resolving Apache Kafka %s with Maven into %s (once)", version, lib)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not any(lib.glob("kafka_2.13-*.jar")):
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise BrokerError(f"Maven could not resolve Apache Kafka {version} (exit {proc.returncode}): {tail}")
    done.write_text(version + "\n")
    return f"{lib}/*"


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise BrokerError(
            "Java not found: Apache Kafka needs Java 17 or newer (apt-get install openjdk-17-jre-headless)"
        )
    return java


class KafkaBroker(LocalBroker):
    """Apache Kafka in KRaft mode (broker + controller in one JVM) on free loopback ports.

    ``data_dir``: where the log segments live (default: a temporary folder removed by :meth:`stop`);
    :meth:`restart` keeps them, so a restarted broker has every committed record, offset and
    transaction. ``properties``: extra ``server.properties`` entries (they win over the defaults).

    Example:
        >>> b = KafkaBroker(port=29092)
        >>> (b.url, b.kind, b.profile)
        ('kafka://127.0.0.1:29092', 'kafka', 'production')
    """

    kind = "kafka"
    log_path: Path  # always a file here (the base class allows none)

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        controller_port: int | None = None,
        data_dir: Path | None = None,
        log_path: Path | None = None,
        heap: str = "512m",
        properties: dict[str, str] | None = None,
        version: str = KAFKA_VERSION,
    ) -> None:
        super().__init__(port, host)
        self.controller_port = controller_port or free_port(host)
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="seqstream-kafka-"))
        self.log_path = log_path or self.data_dir.parent / f"{self.data_dir.name}.log"
        self.heap = heap
        self.properties = dict(properties or {})
        self.version = version
        self.started_s = 0.0  # seconds the last start took (until the broker answered metadata)

    # -- files ----------------------------------------------------------------------------
    def server_properties(self) -> dict[str, str]:
        h = self.host
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{h}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{h}:{self.port},CONTROLLER://{h}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{h}:{self.port},CONTROLLER://{h}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            **_ONE_NODE,
        }
        props.update(self.properties)
        return props

    def _write_config(self) -> Path:
        conf = self.data_dir / "server.properties"
        conf.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2)
        return conf

    def _run_java(self, java: str, cp: str, main: str, *args: str, log_file: Any) -> subprocess.Popen[bytes]:
        cmd = [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            cp,
            main,
            *args,
        ]
        return subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> KafkaBroker:
        """Format the storage (first start only), start the JVM, wait until it answers metadata."""
        t0 = time.monotonic()
        java = _java()
        cp = kafka_classpath(self.version)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self._write_config()
        with open(self.log_path, "ab") as out:
            if not (self.data_dir / "logs" / "meta.properties").is_file():
                fmt = self._run_java(
                    java,
                    cp,
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    f"--cluster-id={_cluster_id()}",  # one token: an id may start with "-"
                    "--config",
                    str(conf),
                    log_file=out,
                )
                if fmt.wait(timeout=timeout) != 0:
                    raise BrokerError(f"formatting Kafka's storage failed; see {self.log_path}")
            self.proc = self._run_java(java, cp, "kafka.Kafka", str(conf), log_file=out)
        deadline = t0 + timeout
        self._wait_listening("Apache Kafka", deadline, 0.1)
        asyncio.run(wait_ready(self.bootstrap, timeout=max(1.0, deadline - time.monotonic())))
        self.started_s = time.monotonic() - t0
        log.info(
            "Apache Kafka %s ready at %s in %.1f s (log %s)", self.version, self.url, self.started_s, self.log_path
        )
        return self

    def _end(self, sig: int, timeout: float) -> int | None:
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.proc = None
        return p.returncode

    def stop(self, timeout: float = 30.0, *, keep_data: bool = False) -> int | None:
        """A clean shutdown (SIGTERM: Kafka's controlled shutdown); the temporary data folder is removed."""
        rc = self._end(signal.SIGTERM, timeout)
        if self._own_dir and not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return rc

    def kill(self) -> None:
        """SIGKILL, data kept (a crash, for fault tests); :meth:`start` brings the same broker back."""
        self._end(signal.SIGKILL, 10.0)

    def restart(self, timeout: float = 60.0, *, hard: bool = False) -> KafkaBroker:
        """Stop (``hard``: kill) and start again on the same ports with the same data."""
        if hard:
            self.kill()
        else:
            self._end(signal.SIGTERM, 30.0)
        return self.start(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _cluster_id() -> str:
    """A random KRaft cluster id (what ``StorageTool random-uuid`` prints: 16 bytes, URL-safe base64)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
