"""Settings: environment parsing, profiles, checkpoints, derived connection options."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import CheckpointError, ConfigError
from stream.settings import Settings, load_settings


def test_env_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSTREAM_BROKER_URL", "kafka://a:1, kafka://b:2,c")
    monkeypatch.setenv("SEQSTREAM_SOURCES", "sensors,ticks")
    monkeypatch.setenv("SEQSTREAM_WEB_PORT", "7070")
    monkeypatch.setenv("SEQSTREAM_BATCH_MAX", "64")
    monkeypatch.setenv("SEQSTREAM_SASL_PASSWORD", "hunter2")
    s = Settings()
    assert s.bootstrap_servers == ["a:1", "b:2", "c:9092"]
    assert s.faust_broker == "kafka://a:1;kafka://b:2;kafka://c:9092"
    assert s.sources == ("sensors", "ticks")
    assert s.input_topics == {"sensor-readings": "sensors", "market-ticks": "ticks"}
    assert s.web_port == 7070 and s.batch_max == 64
    assert "hunter2" not in str(s.redacted()) and "hunter2" not in repr(s)


def test_frozen_and_validation() -> None:
    s = Settings()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        s.batch_max = 3  # type: ignore[misc]
    with pytest.raises(ConfigError):
        load_settings(device="tpu")
    with pytest.raises(ConfigError):
        load_settings(sources="sensors,video")
    with pytest.raises(ConfigError, match="SEQSTREAM_BROKER_URL"):
        Settings().bootstrap_servers  # noqa: B018


def test_profiles_keep_tansu_knobs_out_of_production() -> None:
    prod = Settings(broker_url="kafka://k:9092")
    emb = Settings(broker_url="kafka://k:9092", profile="tansu")
    assert Settings(broker_url="kafka://k:9092", profile="embedded").profile == "tansu"  # the old name
    assert emb.broker_session_timeout == 6.0 and emb.broker_heartbeat_interval == 1.0 and emb.fetch_wait_ms == 20
    # Kafka's own client defaults (session.timeout.ms 45 s, heartbeat 3 s) on the production path
    assert prod.broker_session_timeout == 45.0 and prod.broker_heartbeat_interval == 3.0
    # production fetches hold for 64 KiB or 30 ms while records flow, and poll every 100 ms when idle
    assert (prod.fetch_min, prod.fetch_wait_ms, prod.fetch_idle_wait) == (64 << 10, 30, 100)
    assert (emb.fetch_min, emb.fetch_idle_wait) == (1, 20)  # Tansu: every fetch answers at the first byte
    assert "producer_max_batch_size" not in prod.faust_kwargs()
    assert emb.faust_kwargs()["producer_max_batch_size"] == 1
    # changelog records: one per record batch only for Tansu's ListOffsets
    assert emb.changelog_batch_records == 1 and prod.changelog_batch_records > 1_000_000
    assert Settings(broker_url="kafka://k", fetch_max_wait_ms=5).fetch_wait_ms == 5
    short = Settings(broker_url="kafka://k", session_timeout_s=6)
    assert short.broker_session_timeout == 6.0 and short.broker_heartbeat_interval == 2.0


def test_exactly_once_is_refused_with_the_tansu_profile() -> None:
    assert Settings(broker_url="kafka://k", guarantee="exactly_once").exactly_once
    assert not Settings(broker_url="kafka://k").exactly_once  # the default: at_least_once
    with pytest.raises(ConfigError, match="exactly_once needs Kafka transactions"):
        load_settings(broker_url="kafka://k", guarantee="exactly_once", profile="tansu")


def test_sasl_ssl_kwargs(tmp_path: Path) -> None:
    s = Settings(
        broker_url="kafka://k:9093",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="u",
        sasl_password="p",
    )
    kw = s.kafka_kwargs()
    assert kw["sasl_mechanism"] == "SCRAM-SHA-256" and kw["sasl_plain_password"] == "p"


def test_checkpoint_paths(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="SEQSTREAM_CHECKPOINT_SPEECH"):
        Settings(checkpoint_speech=tmp_path / "missing.pt").checkpoint("speech")
    f = tmp_path / "x.pt"
    f.write_bytes(b"")
    assert Settings(checkpoint_ticks=f).checkpoint("ticks") == f
    with pytest.raises(ConfigError):
        Settings().checkpoint("video")


def test_every_subcommand_has_help(capsys) -> None:
    """The CLI builds: each subcommand parses --help (no broker, no model needed)."""
    import pytest

    from stream.cli import build_parser

    for cmd in ("replay", "train", "evaluate", "worker", "demo", "produce", "tail", "bench"):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([cmd, "--help"])
        assert exc.value.code == 0, cmd
        assert "usage: seqstream" in capsys.readouterr().out
