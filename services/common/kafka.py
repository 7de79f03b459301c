"""aiokafka plumbing shared by every service: topic creation, client factories, (de)serialisation.

Clients are configured here once, so every producer is idempotent with `acks=all` and every
consumer commits explicitly; services only choose topics and group ids. aiokafka clients bind to
the running event loop when constructed, so the factories must be called inside a coroutine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, TypeVar

# aiokafka ships no type information; its classes are Any to mypy. The `unused-ignore` code keeps
# these lines valid if pyproject later ignores missing imports for aiokafka.*. KafkaError is
# re-exported (`as KafkaError`) so callers can catch it without importing aiokafka.
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped,unused-ignore]
from aiokafka.conn import create_conn  # type: ignore[import-untyped,unused-ignore]
from aiokafka.errors import KafkaError as KafkaError  # type: ignore[import-untyped,unused-ignore]
from aiokafka.errors import TopicAlreadyExistsError, for_code  # type: ignore[import-untyped,unused-ignore]
from aiokafka.protocol.metadata import MetadataRequest  # type: ignore[import-untyped,unused-ignore]
from pydantic import BaseModel

from services.common.topics import TopicSpec

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

_CLIENT_ID = "newsalert"

# A producer's batch per partition, in bytes: well under the broker's default
# message.max.bytes (1 MiB). aiokafka's default (16 KiB, about 30 alerts) fills while the
# previous batch of a busy partition is in flight, and then every sender to that partition
# waits for it to drain and wakes again, over and over: measured in the notifier at 18
# wake-ups per record under load.
MAX_BATCH_BYTES = 512 * 1024


class TopicCreationError(RuntimeError):
    """The broker refused to create one or more topics."""


def _admin(bootstrap: str, request_timeout_ms: int = 30_000) -> Any:
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id=f"{_CLIENT_ID}-admin",
        request_timeout_ms=request_timeout_ms,
    )


async def ensure_topics(
    bootstrap: str, specs: Sequence[TopicSpec], replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; leave existing ones exactly as they are.

    Safe to run from several processes at once: a topic another process created between our
    listing and our request counts as existing.

    Args:
        bootstrap: comma-separated host:port list.
        specs: the topics, with partitions and `spec.config()`.
        replication_factor: replicas per partition (1 on the local one-node broker).

    Returns:
        Names of the topics this call created, in `specs` order.

    Raises:
        TopicCreationError: the broker rejected a topic for another reason than its existence.
    """
    admin = _admin(bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=replication_factor,
                    topic_configs=spec.config(),
                )
                for spec in missing
            ]
        )
    finally:
        await admin.close()

    created: set[str] = set()
    failures: list[str] = []
    for entry in response.topic_errors:
        # (topic, error_code[, error_message]) depending on the negotiated version.
        topic, code = str(entry[0]), int(entry[1])
        message = str(entry[2]) if len(entry) > 2 and entry[2] else ""
        if code == 0:
            created.add(topic)
        elif code != TopicAlreadyExistsError.errno:
            failures.append(f"{topic}: {for_code(code).__name__} {message}".rstrip())
    if failures:
        raise TopicCreationError("could not create topics: " + "; ".join(failures))
    names = [spec.name for spec in missing if spec.name in created]
    if names:
        log.info("created %d topics: %s", len(names), ", ".join(names))
    return names


def make_producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for every in-sync replica.

    Call inside a coroutine, then `await producer.start()` and finally `await producer.stop()`.

    Args:
        bootstrap: comma-separated host:port list.
        **overrides: any AIOKafkaProducer keyword, replacing the defaults below.

    Returns:
        The (not started) producer.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": f"{_CLIENT_ID}-producer",
        "acks": "all",
        "enable_idempotence": True,
        # A few ms batch concurrent sends without a visible delay on a single alert.
        "linger_ms": 5,
        "compression_type": None,
        "max_batch_size": MAX_BATCH_BYTES,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    bootstrap: str, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer that commits only when told to, and starts from the oldest record when new.

    Call inside a coroutine, then `await consumer.start()` and finally `await consumer.stop()`.

    Args:
        bootstrap: comma-separated host:port list.
        *topics: topics to subscribe to (none: subscribe or assign later).
        group_id: consumer group, or None to read every partition without a group.
        **overrides: any AIOKafkaConsumer keyword, replacing the defaults below.

    Returns:
        The (not started) consumer.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": f"{_CLIENT_ID}-consumer",
        "group_id": group_id,
        # Offsets are committed after the work is done, never before: at-least-once.
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def encode(model: BaseModel) -> bytes:
    """A record value: the model as compact UTF-8 JSON."""
    return model.model_dump_json().encode("utf-8")


def decode(schema: type[M], raw: bytes) -> M:
    """Parse and validate a record value.

    Args:
        schema: the pydantic model the topic holds.
        raw: the record value.

    Returns:
        The validated model.

    Raises:
        pydantic.ValidationError: the value is not valid JSON for `schema`.
    """
    return schema.model_validate_json(raw)


async def wait_until_ready(bootstrap: str, timeout_s: float) -> None:
    """Wait until a broker answers a metadata request listing at least one broker.

    Args:
        bootstrap: comma-separated host:port list.
        timeout_s: overall limit.

    Raises:
        TimeoutError: no usable answer within `timeout_s`; the message holds the last error.
    """
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt made"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"Kafka at {bootstrap} not ready after {timeout_s:.1f} s: {last_error}"
            )
        for server in bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            remaining = deadline - time.monotonic()  # shared by the servers, not each theirs
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    brokers = await _brokers_listed(host.strip("[]"), int(port), remaining)
            except (KafkaError, OSError, TimeoutError, ValueError) as exc:
                last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if brokers:
                return
            last_error = "metadata lists no brokers yet"
        # Back off briefly: a refused connection returns at once and would spin otherwise.
        await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


async def _brokers_listed(host: str, port: int, timeout_s: float) -> int:
    """How many brokers one server's metadata lists, over a connection of this call's own.

    Not through a client: an admin client that fails while a broker (re)starts can leave a
    connection behind (aio-libs/aiokafka#715), which the collector later finds on another
    event loop. A plain TCP connect comes first, because aiokafka logs an ERROR for every
    refused attempt, which would flood the output while the JVM is still starting.
    """
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    await writer.wait_closed()
    conn = await create_conn(
        host,
        port,
        client_id=f"{_CLIENT_ID}-probe",
        request_timeout_ms=max(100, int(timeout_s * 1000)),
    )
    try:
        metadata = await conn.send(MetadataRequest([]))
    finally:
        conn.close()
    return len(metadata.brokers)


async def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of `topic`, sorted; empty when the topic does not exist.

    Asked of the admin API: a consumer's metadata only covers topics it already follows.
    """
    admin = _admin(bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0:
        return []
    return sorted(p["partition"] for p in described["partitions"])
