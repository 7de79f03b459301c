"""Integration fixtures: one real Kafka broker per test session, fresh topics per test.

The broker is the one `newsalert kafka up` runs, on free 127.0.0.1 ports with a throw-away data
dir, started only when a test asks for `kafka_bootstrap`. Set NEWSALERT_TEST_BOOTSTRAP to use an
already running broker instead. A broker that cannot start fails the run: never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.common.broker import BrokerError, LocalBroker
from services.common.kafka import ensure_topics
from services.common.settings import LocalKafkaSettings
from services.common.topics import Topics, build_topics
from services.demo.processes import ServiceProcess, free_port
from tests.support.ingest import RETRY_SCHEDULE_S

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration as `integration`."""
    # This hook sees the whole session's items, unit tests included: filter by path.
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a running broker for the whole session."""
    external = os.environ.get("NEWSALERT_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    local = LocalKafkaSettings()
    # Ports 0: free ports, so a `newsalert kafka up` broker on 9092 can keep running.
    broker = LocalBroker(
        data_dir=tmp_path_factory.mktemp("kafka"),
        cache_dir=local.cache_dir,
        version=local.kafka_version,
    )
    try:
        broker.ensure_jars()
        status = broker.start(wait_s=90)
    except BrokerError as exc:
        pytest.fail(f"the test Kafka broker could not start: {exc}", pytrace=False)
    assert status.bootstrap is not None
    try:
        yield status.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so tests never see each other's records."""
    return f"test-{uuid.uuid4().hex[:12]}."


@pytest.fixture
async def topics(kafka_bootstrap: str, topic_prefix: str) -> Topics:
    """Every newsalert topic under this test's prefix, created on the broker."""
    spec = build_topics(topic_prefix, partitions=3, retry_steps=3)
    await ensure_topics(kafka_bootstrap, spec.all())
    return spec


MatcherFactory = Callable[..., ServiceProcess]


@pytest.fixture
def start_matcher(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> Iterator[MatcherFactory]:
    """Start matcher workers (separate processes) of one consumer group, this test's own.

    Keyword arguments become extra environment variables. Every worker is stopped at the end.
    """
    group = f"matcher-{uuid.uuid4().hex[:8]}"
    started: list[ServiceProcess] = []

    def start(**env: str) -> ServiceProcess:
        port = free_port()
        worker = ServiceProcess(
            "services.matcher",
            {
                "NEWSALERT_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "NEWSALERT_TOPIC_PREFIX": topic_prefix,
                "NEWSALERT_PARTITIONS": "3",
                "NEWSALERT_RETRY_SCHEDULE_S": str(RETRY_SCHEDULE_S),
                "NEWSALERT_MATCHER_GROUP": group,
                "NEWSALERT_MATCHER_PORT": str(port),
                **env,
            },
            port,
            tmp_path / f"matcher-{len(started)}.log",
        )
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
