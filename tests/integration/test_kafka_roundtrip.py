"""The broker, our aiokafka clients and Debian's kcat agree on what a record is."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.common.batching_producer import BatchingProducer
from services.common.kafka import ensure_topics, make_consumer, make_producer
from services.common.topics import Topics

DEADLINE_S = 30.0


@pytest.fixture
def kcat() -> str:
    """Path of Debian's kcat, an independent (librdkafka) Kafka client."""
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat not found on PATH: apt-get install -y kcat", pytrace=False)
    return path


async def _run(*argv: str, stdin: bytes = b"") -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), DEADLINE_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}: {err.decode()}"
    return out


async def _consume_one(bootstrap: str, topic: str) -> tuple[bytes | None, bytes | None]:
    consumer = make_consumer(bootstrap, topic, group_id=f"test-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), DEADLINE_S)
    finally:
        await consumer.stop()
    return record.key, record.value


async def _produce_one(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), DEADLINE_S)
    finally:
        await producer.stop()


async def test_aiokafka_record_round_trips_with_key_and_value(
    kafka_bootstrap: str, topics: Topics
) -> None:
    value = json.dumps({"article_id": "a-1", "title": "Ünïcode headline"}).encode()
    await _produce_one(kafka_bootstrap, topics.articles.name, b"a-1", value)

    assert await _consume_one(kafka_bootstrap, topics.articles.name) == (b"a-1", value)


async def test_kcat_produced_record_is_read_by_our_consumer(
    kafka_bootstrap: str, topics: Topics, kcat: str
) -> None:
    value = b'{"article_id": "k-1", "title": "from librdkafka"}'
    await _run(
        kcat, "-P", "-b", kafka_bootstrap, "-t", topics.articles.name, "-k", "k-1",
        stdin=value + b"\n",
    )  # fmt: skip

    assert await _consume_one(kafka_bootstrap, topics.articles.name) == (b"k-1", value)


async def test_our_record_is_read_by_kcat(kafka_bootstrap: str, topics: Topics, kcat: str) -> None:
    value = b'{"alert_id": "x-1", "rule_id": "r-1"}'
    await _produce_one(kafka_bootstrap, topics.alerts.name, b"acme/r-1", value)

    out = await _run(
        kcat, "-C", "-b", kafka_bootstrap, "-t", topics.alerts.name,
        "-o", "beginning", "-e", "-q", "-J",
    )  # fmt: skip

    records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert [(r["key"], r["payload"]) for r in records] == [("acme/r-1", value.decode())]


async def test_batches_written_natively_are_stored_by_an_idempotent_producer_and_read_back(
    kafka_bootstrap: str, topics: Topics
) -> None:
    topic = topics.alerts.name
    sent = [
        (f"tenant/rule-{n % 7}".encode(), None if n % 50 == 0 else f"alert {n}".encode())
        for n in range(300)
    ]
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        batching = BatchingProducer(producer, max_batch_bytes=2048)  # several batches a lane
        await batching.prepare([topic])
        deliveries = [
            batching.send([(topic, k, v) for k, v in sent[n : n + 30]]) for n in range(0, 300, 30)
        ]
        await asyncio.wait_for(asyncio.gather(*deliveries), DEADLINE_S)
        await batching.close()
    finally:
        await producer.stop()

    consumer = make_consumer(kafka_bootstrap, topic, group_id=f"test-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:
        read: list[tuple[bytes | None, bytes | None]] = []
        while len(read) < len(sent):
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), DEADLINE_S)
            read.extend((r.key, r.value) for records in batches.values() for r in records)
    finally:
        await consumer.stop()

    assert sorted(read, key=repr) == sorted(sent, key=repr)
    for key in {k for k, _ in sent}:  # one key, one partition: its records in the order sent
        assert [v for k, v in read if k == key] == [v for k, v in sent if k == key]


async def test_ensure_topics_is_idempotent_and_applies_topic_config(
    kafka_bootstrap: str, topics: Topics
) -> None:
    assert await ensure_topics(kafka_bootstrap, topics.all()) == []

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([t.name for t in topics.all()])
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t.name) for t in topics.all()]
        )
    finally:
        await admin.close()

    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert partitions == {t.name: t.partitions for t in topics.all()}
    assert partitions[topics.articles.name] == 3
    assert len(topics.retries) == 3

    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for error_code, _msg, _type, name, entries in response.resources:
            assert error_code == 0, name
            configs[name] = {entry[0]: entry[1] for entry in entries}
    for spec in topics.all():
        assert configs[spec.name]["cleanup.policy"] == spec.cleanup_policy, spec.name
        for key, expected in spec.config().items():
            assert configs[spec.name][key] == expected, (spec.name, key)
    assert configs[topics.rules.name]["cleanup.policy"] == "compact"
    assert configs[topics.subscriptions.name]["cleanup.policy"] == "compact"
