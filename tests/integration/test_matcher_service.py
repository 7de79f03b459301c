"""The matcher worker as a separate process against a real broker, fed by the real ingest API."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.alert import Alert
from schemas.article import Article, RejectedRecord
from services.common.topics import Topics
from services.demo.processes import ServiceProcess, metric
from services.matcher.alerts import match_record
from services.matcher.engine.loading import parse_watchlist
from services.matcher.engine.matcher import Matcher
from tests.integration.conftest import MatcherFactory
from tests.support.ingest import ingest_settings, running_ingest
from tests.support.kafka_io import TopicReader, produce, read_until

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
KEY = "na_demo-key-for-matcher-tests-0123"
ARTICLES = "newsalert_matcher_articles_total"


def _alerts(records: list[Any]) -> list[Alert]:
    return [Alert.model_validate_json(r.value) for r in records]


def _seed_articles() -> list[dict[str, Any]]:
    """The two seed articles as JSON, with the outlets they came from."""
    texts = sorted(SEEDS.glob("*.txt"))
    urls = [
        "https://www.washingtonexaminer.com/policy/defense/china-defense-minister-russia",
        "https://www.americanthinker.com/blog/2023/04/china_sends_its_defense_minister.html",
    ]
    articles = []
    for path, url in zip(texts, urls, strict=True):
        title, _, body = path.read_text("utf-8").partition("\n")
        articles.append({"url": url, "title": title.strip(), "body": body, "language": "en"})
    return articles


def _offline_alert_ids(watchlist: Path, articles: list[dict[str, Any]], ids: list[str]) -> set[str]:
    """What `newsalert match` computes for the same rules and articles."""
    loaded = parse_watchlist(watchlist.read_text("utf-8"))
    matcher, errors = Matcher.build((loaded.tenant, r) for r in loaded.rules)
    assert not errors
    found = set()
    for raw, article_id in zip(articles, ids, strict=True):
        article = Article(article_id=article_id, received_at=datetime.now(UTC), **raw)
        found |= {match_record(m, article_id).alert_id for m in matcher.match(article).matches}
    return found


async def test_the_seed_articles_become_alerts_with_one_story(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, start_matcher: MatcherFactory
) -> None:
    worker = start_matcher()
    settings = ingest_settings(kafka_bootstrap, topic_prefix, {"demo": KEY})
    async with running_ingest(settings, KEY) as ingest:
        status, body = await ingest.call(
            "POST",
            "/v1/watchlists:apply",
            data=(SEEDS / "watchlist.yaml").read_bytes(),
            headers={"Content-Type": "application/yaml"},
        )
        assert status == 200, body
        await worker.wait_ready()
        ids = []
        for article in _seed_articles():
            status, receipt = await ingest.call("POST", "/v1/articles", json=article)
            assert status == 202, receipt
            ids.append(receipt["article_id"])
    expected = _offline_alert_ids(SEEDS / "watchlist.yaml", _seed_articles(), ids)
    assert len(expected) >= 4  # every seed rule fires on the first article at least

    records = await read_until(
        kafka_bootstrap, topics.alerts.name, lambda rs: len(rs) >= len(expected)
    )
    alerts = _alerts(records)
    assert {a.alert_id for a in alerts} == expected
    assert {a.story_id for a in alerts} == {alerts[0].story_id}, "one story, told twice"
    first, second = ids
    for alert in alerts:
        assert alert.first_of_story is (alert.article.article_id == first)
        assert alert.evidence, alert.rule_id
    later = [a for a in alerts if a.article.article_id == second]
    assert later
    assert later[0].story_sources == ["washingtonexaminer.com", "americanthinker.com"]


async def test_a_rule_change_through_the_api_takes_effect_without_a_restart(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, start_matcher: MatcherFactory
) -> None:
    worker = start_matcher()
    settings = ingest_settings(kafka_bootstrap, topic_prefix, {"demo": KEY})
    async with running_ingest(settings, KEY) as ingest:
        await worker.wait_ready()
        rule = {"id": "zebra", "name": "Zebra", "any": ["zebra crossing"]}
        status, _ = await ingest.call("PUT", "/v1/rules/zebra", json=rule)
        changed_at = time.perf_counter()
        assert status == 201
        # Articles keep arriving; the first one matched tells when the rule took effect.
        sent: dict[str, float] = {}
        async with TopicReader(kafka_bootstrap, topics.alerts.name) as alerts:
            for n in range(500):
                _, receipt = await ingest.call(
                    "POST", "/v1/articles", json={"title": f"A zebra crossing, number {n}"}
                )
                sent[receipt["article_id"]] = time.perf_counter() - changed_at
                if await alerts.poll(0.02):
                    break
            matched = _alerts(await alerts.until(lambda rs: len(rs) >= 1))
        delay = min(sent[a.article.article_id] for a in matched)
        print(
            f"\nrule change: first article to see it was sent {delay * 1000:.0f} ms after the 2xx"
        )

        status, _ = await ingest.call("DELETE", "/v1/rules/zebra")
        deleted_at = time.perf_counter()
        assert status == 204
        # After the delete, articles that would have matched go unmatched.
        for n in range(500):
            unmatched = await metric(worker, ARTICLES, outcome="unmatched")
            total = await metric(worker, ARTICLES)
            await ingest.call("POST", "/v1/articles", json={"title": f"A zebra crossing, {n}"})
            await _next_count(worker, total)
            if await metric(worker, ARTICLES, outcome="unmatched") > unmatched:
                break
        print(f"rule delete: took effect within {(time.perf_counter() - deleted_at) * 1000:.0f} ms")


async def _next_count(worker: ServiceProcess, before_total: float) -> None:
    """Return once the worker has consumed one more article than `before_total`."""
    # Another process: its /metrics is all there is to watch, so poll it.
    while await metric(worker, ARTICLES) <= before_total:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def test_an_undecodable_record_goes_to_the_dead_letter_topic_and_the_stream_goes_on(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, start_matcher: MatcherFactory
) -> None:
    worker = start_matcher()
    settings = ingest_settings(kafka_bootstrap, topic_prefix, {"demo": KEY})
    async with running_ingest(settings, KEY) as ingest:
        await ingest.call(
            "PUT", "/v1/rules/li", json={"id": "li", "name": "Li", "any": ["Li Shangfu"]}
        )
        await worker.wait_ready()
        await produce(
            kafka_bootstrap,
            topics.articles.name,
            [
                (b"bad-1", b"\xff\xfe not json"),
                (b"bad-2", b'{"article_id": "x"}'),
                (b"bad-3", None),
            ],
        )
        status, receipt = await ingest.call("POST", "/v1/articles", json={"title": "Li Shangfu"})
        assert status == 202
    dead = await read_until(kafka_bootstrap, topics.articles_dlq.name, lambda rs: len(rs) >= 3)
    rejected = {m.key: m for m in (RejectedRecord.model_validate_json(r.value) for r in dead)}
    assert set(rejected) == {"bad-1", "bad-2", "bad-3"}
    assert "received_at" in rejected["bad-2"].reason
    alerts = await read_until(kafka_bootstrap, topics.alerts.name, lambda rs: len(rs) >= 1)
    assert _alerts(alerts)[0].article.article_id == receipt["article_id"]


async def test_an_alert_too_large_for_kafka_dead_letters_its_article_and_the_stream_goes_on(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, start_matcher: MatcherFactory
) -> None:
    worker = start_matcher()
    settings = ingest_settings(kafka_bootstrap, topic_prefix, {"demo": KEY})
    async with running_ingest(settings, KEY) as ingest:
        for rule in ({"id": "china", "any": ["China"]}, {"id": "budget", "any": ["budget vote"]}):
            status, _ = await ingest.call(
                "PUT", f"/v1/rules/{rule['id']}", json=rule | {"name": rule["id"]}
            )
            assert status == 201
        await worker.wait_ready()
        # Evidence quotes every occurrence: 20,000 make an alert over a megabyte, which no
        # Kafka record takes. Resent for ever, it held back every later alert of its rule.
        status, long = await ingest.call(
            "POST", "/v1/articles", json={"title": "The budget vote", "body": "China " * 20_000}
        )
        assert status == 202
        status, later = await ingest.call("POST", "/v1/articles", json={"title": "China"})
        assert status == 202
    alerts = _alerts(await read_until(kafka_bootstrap, topics.alerts.name, lambda rs: len(rs) >= 2))
    assert {(a.rule_id, a.article.article_id) for a in alerts} == {
        ("budget", long["article_id"]),
        ("china", later["article_id"]),
    }
    [dead] = await read_until(kafka_bootstrap, topics.articles_dlq.name, lambda rs: len(rs) >= 1)
    rejected = RejectedRecord.model_validate_json(dead.value)
    assert rejected.key == long["article_id"]
    assert "demo/china" in rejected.reason
    assert await metric(worker, "newsalert_matcher_alerts_too_large_total") == 1
    assert Article.model_validate_json(base64.b64decode(rejected.value_b64)).body.startswith(
        "China"
    )
