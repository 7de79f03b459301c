"""A local Kafka broker for one benchmark run (the test harness's broker, in a scratch folder)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.common.broker import LocalBroker
from services.common.settings import LocalKafkaSettings


@contextmanager
def local_broker() -> Iterator[tuple[str, Path, int]]:
    """A started broker's bootstrap address, a scratch folder (for logs) and the broker's
    process id (to read its CPU time); the broker and the folder are gone on exit."""
    local = LocalKafkaSettings()
    with tempfile.TemporaryDirectory() as scratch:
        broker = LocalBroker(
            data_dir=Path(scratch) / "kafka", cache_dir=local.cache_dir, version=local.kafka_version
        )
        broker.ensure_jars()
        status = broker.start(wait_s=90)
        assert status.bootstrap is not None
        assert status.pid is not None
        try:
            yield status.bootstrap, Path(scratch), status.pid
        finally:
            broker.stop()
