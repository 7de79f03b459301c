"""The pure parts of the local broker manager: rendered config, cluster ids, tool checks."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from services.common.broker import (
    BrokerToolMissing,
    LocalBroker,
    free_ports,
    new_cluster_id,
    parse_properties,
    render_log4j2_properties,
    render_server_properties,
)


def _broker(tmp_path: Path, version: str = "4.1.1", port: int = 0) -> LocalBroker:
    return LocalBroker(
        data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", version=version, port=port
    )


def _props(tmp_path: Path) -> dict[str, str]:
    text = render_server_properties(port=19092, controller_port=19093, log_dirs=tmp_path / "d")
    return parse_properties(text)


def test_server_properties_bind_only_to_loopback(tmp_path: Path) -> None:
    props = _props(tmp_path)

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert "0.0.0.0" not in "\n".join(props.values())


def test_server_properties_are_a_one_node_kraft_combined_broker(tmp_path: Path) -> None:
    props = _props(tmp_path)

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["log.dirs"] == str(tmp_path / "d")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"


def test_log4j2_properties_log_to_stdout() -> None:
    props = parse_properties(render_log4j2_properties())

    assert props["appender.stdout.target"] == "SYSTEM_OUT"
    assert props["rootLogger.appenderRef.stdout.ref"] == "STDOUT"


def test_cluster_id_is_22_chars_of_url_safe_base64_not_starting_with_dash() -> None:
    ids = {new_cluster_id() for _ in range(2000)}

    assert len(ids) == 2000
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid), cid
        assert not cid.startswith("-")


def test_free_ports_are_distinct() -> None:
    ports = free_ports(2)

    assert len(set(ports)) == 2
    assert all(1024 <= p <= 65535 for p in ports)


def test_start_without_java_raises_tool_missing_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    broker = _broker(tmp_path)

    with pytest.raises(BrokerToolMissing, match="openjdk-17-jre-headless"):
        broker.start()
    assert not (tmp_path / "data").exists()


def test_ensure_jars_without_maven_raises_tool_missing_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    broker = _broker(tmp_path)

    with pytest.raises(BrokerToolMissing, match="apt-get install -y maven"):
        broker.ensure_jars()


def test_ensure_jars_skips_maven_when_a_complete_copy_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # Maven would be missing
    broker = _broker(tmp_path, version="9.9")
    broker.libs_dir.mkdir(parents=True)
    (broker.libs_dir / "kafka_2.13-9.9.jar").write_bytes(b"")
    (broker.libs_dir.parent / ".complete").write_text("kafka 9.9\n")

    assert broker.ensure_jars() == tmp_path / "cache" / "kafka-9.9" / "libs"


def test_half_copied_jars_are_not_ready(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    broker.libs_dir.mkdir(parents=True)
    (broker.libs_dir / "kafka_2.13.jar").write_bytes(b"")

    assert not broker.jars_ready()


def test_status_of_a_never_started_broker_is_not_running(tmp_path: Path) -> None:
    broker = _broker(tmp_path, port=19092)

    status = broker.status()

    assert not status.running
    assert status.pid is None
    assert status.bootstrap == "127.0.0.1:19092"
    assert status.log_file == tmp_path / "data" / "broker.log"


def test_status_ignores_a_stale_pid_file(tmp_path: Path) -> None:
    broker = _broker(tmp_path, port=19092)
    broker.data_dir.mkdir()
    # Our own pid is alive but is not a Kafka broker running this data dir's config.
    broker.pid_file.write_text(f"{os.getpid()}\n")

    assert not broker.status().running
    assert broker.stop() is False
    assert not broker.pid_file.exists()
