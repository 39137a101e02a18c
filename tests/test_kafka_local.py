"""The local Apache Kafka launcher without starting it: configuration, and the errors a user sees."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream.admin import BrokerError
from stream.tools import kafka_broker as kafka_local
from stream.tools.kafka_broker import KafkaBroker, kafka_classpath


def test_one_node_kraft_configuration(tmp_path: Path) -> None:
    b = KafkaBroker(port=29092, controller_port=29093, data_dir=tmp_path, properties={"num.partitions": "3"})
    p = b.server_properties()
    assert p["process.roles"] == "broker,controller" and p["controller.quorum.bootstrap.servers"] == "127.0.0.1:29093"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert p["advertised.listeners"] == p["listeners"]
    assert p["offsets.topic.replication.factor"] == p["transaction.state.log.replication.factor"] == "1"
    assert p["transaction.state.log.min.isr"] == "1"  # transactions work on one node
    assert p["log.dirs"] == str(tmp_path / "logs") and p["num.partitions"] == "3"  # extra properties win
    assert (b.url, b.bootstrap) == ("kafka://127.0.0.1:29092", "127.0.0.1:29092")


def test_cluster_ids_are_kraft_ids() -> None:
    ids = {kafka_local._cluster_id() for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)


def test_missing_maven_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQSTREAM_KAFKA_LIBS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing resolved yet
    monkeypatch.setattr(kafka_local.shutil, "which", lambda name: None)
    with pytest.raises(BrokerError, match=r"Maven \(mvn\) not found.*SEQSTREAM_KAFKA_LIBS"):
        kafka_classpath()
    with pytest.raises(BrokerError, match="make kafka-libs"):
        kafka_classpath(fetch=False)


def test_missing_java_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(kafka_local.shutil, "which", lambda name: None)
    with pytest.raises(BrokerError, match="Java not found"):
        kafka_local._java()


def test_own_kafka_jars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSTREAM_KAFKA_LIBS", str(tmp_path))
    with pytest.raises(BrokerError, match=r"no kafka_2\.13"):
        kafka_classpath()
    (tmp_path / "kafka_2.13-4.4.0.jar").write_bytes(b"")
    assert kafka_classpath() == f"{tmp_path}/*"


def test_the_pom_pins_the_launchers_version() -> None:
    pom = kafka_local._POM.read_text()
    assert f"<kafka.version>{kafka_local.KAFKA_VERSION}</kafka.version>" in pom
