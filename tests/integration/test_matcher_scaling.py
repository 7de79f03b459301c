"""Matcher workers of one consumer group: they split the work, survive kill -9, report lag."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from schemas.alert import Alert
from schemas.article import Article
from schemas.watchlist import RuleRecord, WatchlistRule
from services.common.kafka import encode
from services.common.topics import Topics, record_key
from services.demo.processes import ServiceProcess, metric
from tests.integration.conftest import MatcherFactory
from tests.support.kafka_io import TopicReader, produce
from tests.support.workload import expected_alert_ids, synthetic_workload

TENANT = "acme"


async def _load(bootstrap: str, topics: Topics, rules: list[WatchlistRule]) -> None:
    now = datetime.now(UTC)
    await produce(
        bootstrap,
        topics.rules.name,
        [
            (
                record_key(TENANT, r.id).encode(),
                encode(RuleRecord(tenant=TENANT, rule=r, version=r.version(), updated_at=now)),
            )
            for r in rules
        ],
    )


async def _stream(bootstrap: str, topics: Topics, articles: list[Article]) -> None:
    await produce(
        bootstrap,
        topics.articles.name,
        [(a.article_id.encode(), encode(a)) for a in articles],
    )


async def test_two_workers_split_the_partitions_and_produce_what_one_would(
    kafka_bootstrap: str, topics: Topics, start_matcher: MatcherFactory
) -> None:
    rules, articles = synthetic_workload(articles=600, rules=40)
    expected = expected_alert_ids(TENANT, rules, articles)
    assert len(expected) > 100
    await _load(kafka_bootstrap, topics, rules)
    first, second = start_matcher(), start_matcher()
    await first.wait_ready()
    await second.wait_ready()
    await _stream(kafka_bootstrap, topics, articles)

    async with TopicReader(kafka_bootstrap, topics.alerts.name) as reader:
        records = await reader.until(
            lambda rs: {a.alert_id for a in _alerts(rs)} >= expected, timeout_s=120
        )
    alerts = _alerts(records)
    assert {a.alert_id for a in alerts} == expected
    by_worker = [await _consumed(w) for w in (first, second)]
    assert all(n > 0 for n in by_worker), f"articles per worker: {by_worker}"
    assert sum(by_worker) >= len(articles)


async def test_a_worker_killed_mid_stream_loses_no_alert(
    kafka_bootstrap: str, topics: Topics, start_matcher: MatcherFactory
) -> None:
    rules, articles = synthetic_workload(articles=3000, rules=40, seed=11)
    expected = expected_alert_ids(TENANT, rules, articles)
    await _load(kafka_bootstrap, topics, rules)
    victim, survivor = start_matcher(), start_matcher()
    await victim.wait_ready()
    await survivor.wait_ready()
    await _stream(kafka_bootstrap, topics, articles)

    async with TopicReader(kafka_bootstrap, topics.alerts.name) as reader:
        await reader.until(lambda rs: len(rs) >= len(expected) // 3, timeout_s=120)
        victim.kill()
        records = await reader.until(
            lambda rs: {a.alert_id for a in _alerts(rs)} >= expected, timeout_s=180
        )
    ids = [a.alert_id for a in _alerts(records)]
    assert set(ids) == expected, f"lost: {len(expected - set(ids))}"
    print(
        f"\nkill -9 at a third of the stream: {len(expected)} alert ids, none lost, "
        f"{len(ids) - len(set(ids))} duplicates"
    )


async def test_the_lag_is_the_backlog_the_broker_holds_until_the_worker_has_done_it(
    kafka_bootstrap: str, topics: Topics, start_matcher: MatcherFactory
) -> None:
    rules, articles = synthetic_workload(articles=3000, rules=40, seed=5)
    await _load(kafka_bootstrap, topics, rules)
    await _stream(kafka_bootstrap, topics, articles)  # a backlog before the worker starts
    worker = start_matcher(NEWSALERT_LAG_INTERVAL_S="0.2")
    await worker.wait_ready()
    readings = []
    deadline = asyncio.get_running_loop().time() + 120
    # Another process: its /metrics is all there is to watch, so poll it.
    while asyncio.get_running_loop().time() < deadline:
        readings.append(await metric(worker, "newsalert_matcher_consumer_lag"))
        if readings[-1] == 0 and await _consumed(worker) >= len(articles):
            break
        await asyncio.sleep(0.05)
    assert readings[-1] == 0, f"lag readings: {readings[-20:]}"
    # Read from the broker, the backlog shows before the worker has touched most of it.
    assert 0 < max(readings) <= len(articles)


async def _consumed(worker: ServiceProcess) -> float:
    return await metric(worker, "newsalert_matcher_articles_total")


def _alerts(records: list[Any]) -> list[Alert]:
    return [Alert.model_validate_json(r.value) for r in records]
