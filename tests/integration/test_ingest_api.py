"""The ingest API against a real Kafka broker and a real HTTP server on loopback."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.common.settings import IngestSettings
from services.common.topics import Topics
from services.ingest.service import IngestService
from tests.support.ingest import ingest_settings
from tests.support.kafka_io import articles_in, record_count

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
ACME_KEY = "na_acme-key-for-tests-0123456789"
GLOBEX_KEY = "na_globex-key-for-tests-012345678"


@dataclass
class Ingest:
    url: str
    service: IngestService
    http: aiohttp.ClientSession
    topics: Topics
    bootstrap: str

    async def call(
        self, method: str, path: str, key: str | None = ACME_KEY, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text) if text else None
            except ValueError:
                return r.status, text


def _settings(bootstrap: str, prefix: str) -> IngestSettings:
    return ingest_settings(bootstrap, prefix, {"acme": ACME_KEY, "globex": GLOBEX_KEY})


async def _start(bootstrap: str, topics: Topics, prefix: str) -> tuple[IngestService, str]:
    service = IngestService(_settings(bootstrap, prefix))
    state = await service.start()
    port = await service.serve(state, port=0)
    return service, f"http://127.0.0.1:{port}"


@pytest.fixture
async def ingest(kafka_bootstrap: str, topics: Topics, topic_prefix: str) -> AsyncIterator[Ingest]:
    service, url = await _start(kafka_bootstrap, topics, topic_prefix)
    async with aiohttp.ClientSession() as http:
        yield Ingest(url, service, http, topics, kafka_bootstrap)
    await service.stop()


ARTICLE = {
    "url": "https://example.com/news/1?utm_source=x",
    "title": "Li Shangfu visits Moscow",
    "body": "China's defence minister Li Shangfu met Russian officials.",
    "language": "en",
}


async def test_an_accepted_article_is_in_kafka_when_the_2xx_arrives(ingest: Ingest) -> None:
    status, body = await ingest.call("POST", "/v1/articles", json=ARTICLE)
    assert status == 202, body
    assert body["status"] == "accepted"
    [article] = await articles_in(ingest.bootstrap, ingest.topics.articles.name, 1)
    assert article.article_id == body["article_id"]
    assert article.source == "example.com"
    assert article.title == ARTICLE["title"]


async def test_the_same_article_twice_gets_the_same_id_and_is_published_once(
    ingest: Ingest,
) -> None:
    first = await ingest.call("POST", "/v1/articles", json=ARTICLE)
    # Same canonical URL (utm_* parameters and fragments do not count).
    again = dict(ARTICLE, url="https://EXAMPLE.com/news/1#top")
    second = await ingest.call("POST", "/v1/articles", json=again)
    assert first[1]["article_id"] == second[1]["article_id"]
    assert second == (202, {**second[1], "status": "duplicate"})
    assert await record_count(ingest.bootstrap, ingest.topics.articles.name) == 1


async def test_an_ndjson_batch_answers_line_by_line(ingest: Ingest) -> None:
    lines = [
        json.dumps({"title": "one", "body": "first"}),
        json.dumps({"title": "two", "published_at": "not a date"}),
        json.dumps({"title": "three", "body": "third"}),
    ]
    status, body = await ingest.call(
        "POST",
        "/v1/articles",
        data="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert status == 207
    assert (body["accepted"], body["refused"], body["duplicates"]) == (2, 1, 0)
    refused = body["items"][1]
    assert refused["line"] == 2
    assert refused["status"] == "refused"
    assert refused["errors"][0]["loc"] == ["published_at"]
    assert await record_count(ingest.bootstrap, ingest.topics.articles.name) == 2


async def test_a_scraped_text_article_is_parsed_and_accepted(ingest: Ingest) -> None:
    text = (SEEDS / "000_96e167dc266a1ce7.txt").read_text("utf-8")
    status, body = await ingest.call(
        "POST", "/v1/articles/text", data=text.encode(), headers={"Content-Type": "text/plain"}
    )
    assert status == 202, body
    [article] = await articles_in(ingest.bootstrap, ingest.topics.articles.name, 1)
    assert article.title.startswith("Chinese defense minister heading to Russia")
    assert "Video Embed" not in article.body
    assert "Li Shangfu" in article.body


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer na_not-a-known-key-000000000"],
    ids=["missing", "malformed", "wrong-scheme", "unknown"],
)
async def test_a_missing_malformed_or_unknown_key_is_401(
    ingest: Ingest, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    status, body = await ingest.call("GET", "/v1/rules", key=None, headers=headers)
    assert status == 401
    assert "API key" in body["detail"]


RULE = {"name": "Li Shangfu", "severity": "high", "any": ["Li Shangfu", "李尚福"]}


async def test_a_rule_is_created_read_listed_and_deleted(ingest: Ingest) -> None:
    assert (await ingest.call("PUT", "/v1/rules/li-shangfu", json=RULE))[0] == 201
    status, record = await ingest.call("GET", "/v1/rules/li-shangfu")
    assert status == 200
    assert record["rule"]["any"] == RULE["any"]
    assert len(record["version"]) == 16
    assert [r["rule"]["id"] for r in (await ingest.call("GET", "/v1/rules"))[1]] == ["li-shangfu"]
    assert (await ingest.call("DELETE", "/v1/rules/li-shangfu"))[0] == 204
    assert (await ingest.call("GET", "/v1/rules/li-shangfu"))[0] == 404


async def test_another_tenants_rule_answers_404(ingest: Ingest) -> None:
    await ingest.call("PUT", "/v1/rules/li-shangfu", json=RULE)
    assert (await ingest.call("GET", "/v1/rules/li-shangfu", key=GLOBEX_KEY))[0] == 404
    assert (await ingest.call("DELETE", "/v1/rules/li-shangfu", key=GLOBEX_KEY))[0] == 404
    assert (await ingest.call("GET", "/v1/rules", key=GLOBEX_KEY))[1] == []


async def test_an_invalid_query_is_refused_with_its_position(ingest: Ingest) -> None:
    status, body = await ingest.call(
        "PUT", "/v1/rules/bad", json={"name": "bad", "query": "(China OR"}
    )
    assert status == 422
    [error] = body["detail"]["errors"]
    assert (error["rule_id"], error["where"], error["position"]) == ("bad", "query", 10)
    assert await record_count(ingest.bootstrap, ingest.topics.rules.name) == 0


async def test_a_watchlist_with_one_invalid_rule_publishes_nothing(ingest: Ingest) -> None:
    watchlist = (SEEDS / "watchlist.yaml").read_text("utf-8").replace("tenant: demo", "")
    broken = watchlist + "  - id: broken\n    name: Broken\n    query: 'a NEAR/3'\n"
    status, body = await ingest.call(
        "POST",
        "/v1/watchlists:apply",
        data=broken.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert status == 422
    assert [e["rule_id"] for e in body["detail"]["errors"]] == ["broken"]
    assert await record_count(ingest.bootstrap, ingest.topics.rules.name) == 0
    status, body = await ingest.call(
        "POST",
        "/v1/watchlists:apply",
        data=watchlist.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert status == 200, body
    assert sorted(body["created"]) == ["china-russia-defence", "li-shangfu", "military-drills"]


async def test_rules_and_subscriptions_survive_a_restart(
    ingest: Ingest, kafka_bootstrap: str, topics: Topics, topic_prefix: str
) -> None:
    await ingest.call("PUT", "/v1/rules/li-shangfu", json=RULE)
    status, created = await ingest.call(
        "PUT", "/v1/subscriptions/ops", json={"url": "http://127.0.0.1:9/hook"}
    )
    assert status == 201, created
    await ingest.service.stop()
    service, url = await _start(kafka_bootstrap, topics, topic_prefix)
    try:
        restarted = Ingest(url, service, ingest.http, topics, kafka_bootstrap)
        assert (await restarted.call("GET", "/v1/rules/li-shangfu"))[0] == 200
        status, sub = await restarted.call("GET", "/v1/subscriptions/ops")
        assert status == 200
        assert sub["url"] == "http://127.0.0.1:9/hook"
    finally:
        await service.stop()


async def test_a_subscription_secret_is_shown_once_and_rotation_keeps_the_old_one(
    ingest: Ingest,
) -> None:
    status, created = await ingest.call(
        "PUT", "/v1/subscriptions/ops", json={"url": "http://127.0.0.1:9/hook"}
    )
    assert status == 201
    secret = created["secret"]
    assert secret.startswith("whsec_")
    status, view = await ingest.call("GET", "/v1/subscriptions/ops")
    assert secret not in json.dumps(view)
    status, rotated = await ingest.call("POST", "/v1/subscriptions/ops/rotate-secret")
    assert status == 200
    assert rotated["secret"] != secret
    old, new = rotated["subscription"]["secrets"]
    assert old["expires_at"] is not None
    assert new["expires_at"] is None


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/hook",
        "ftp://example.com/x",
        "https://localhost/hook",
    ],
)
async def test_a_subscription_to_a_private_address_is_refused(ingest: Ingest, url: str) -> None:
    status, body = await ingest.call("PUT", "/v1/subscriptions/x", json={"url": url})
    assert status == 422
    assert "url refused" in body["detail"]


# Each case: (what is sent, expected status, a word the message must contain).
BAD_INPUT: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "body-over-1-MiB",
        {
            # A stream with a known size: aiohttp declares its Content-Length.
            "data": io.BytesIO(b"{" + b" " * (1024 * 1024 + 1) + b"}"),
            "headers": {"Content-Type": "application/json"},
        },
        413,
        "larger",
    ),
    ("text-over-512-KiB", {"json": {"title": "t", "body": "x" * (512 * 1024 + 1)}}, 422, "at most"),
    (
        "invalid-utf8",
        {"data": b'{"title": "\xff\xfe"}', "headers": {"Content-Type": "application/json"}},
        400,
        "UTF-8",
    ),
    (
        "lone-surrogate",
        {"data": b'{"title": "\\ud800"}', "headers": {"Content-Type": "application/json"}},
        422,
        "surrogate",
    ),
    (
        "nested-10000-deep",
        {"data": b"[" * 10_000 + b"]" * 10_000, "headers": {"Content-Type": "application/json"}},
        400,
        "nested",
    ),
    (
        "nul-escaped",
        {"data": b'{"title": "a\\u0000b"}', "headers": {"Content-Type": "application/json"}},
        422,
        "NUL",
    ),
    (
        "nul-raw",
        {"data": b'{"title": "a\x00b"}', "headers": {"Content-Type": "application/json"}},
        400,
        "JSON",
    ),
    (
        "number-5000-digits",
        {
            "data": b'{"title": ' + b"9" * 5000 + b"}",
            "headers": {"Content-Type": "application/json"},
        },
        400,
        "number",
    ),
    (
        "wrong-content-type",
        {"data": b"title=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        415,
        "application/json",
    ),
    (
        "not-json",
        {"data": b"{title: x}", "headers": {"Content-Type": "application/json"}},
        400,
        "line 1 column 2",
    ),
]


@pytest.mark.parametrize(
    ("case", "request_args", "status", "word"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT]
)
async def test_bad_input_is_a_clear_4xx_and_never_a_record(
    ingest: Ingest, case: str, request_args: dict[str, Any], status: int, word: str
) -> None:
    got, body = await ingest.call("POST", "/v1/articles", **request_args)
    assert got == status, body
    assert word in json.dumps(body), body
    assert await record_count(ingest.bootstrap, ingest.topics.articles.name) == 0


async def test_an_article_too_large_for_a_kafka_record_is_413_saying_why(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str
) -> None:
    # Under a request limit raised to 4 MiB, an article can outgrow what one Kafka record
    # holds; without the check, Kafka refuses it and the client gets a 5xx that says nothing.
    settings = _settings(kafka_bootstrap, topic_prefix).model_copy(
        update={"max_body_bytes": 4 * 1024 * 1024}
    )
    service = IngestService(settings)
    port = await service.serve(await service.start(), port=0)
    large = {"title": "Long read", "body": "中文" * 250_000}  # 1.5 MB in UTF-8
    ndjson = "\n".join(json.dumps(a, ensure_ascii=False) for a in (large, {"title": "short"}))
    try:
        async with aiohttp.ClientSession() as http:
            ingest = Ingest(f"http://127.0.0.1:{port}", service, http, topics, kafka_bootstrap)
            status, body = await ingest.call(
                "POST",
                "/v1/articles",
                data=io.BytesIO(json.dumps(large, ensure_ascii=False).encode()),
                headers={"Content-Type": "application/json"},
            )
            assert status == 413, body
            [error] = body["detail"]
            assert error["loc"] == ["body", "body"]
            assert "over the 1047564 one record may take" in error["msg"], error

            status, batch = await ingest.call(
                "POST",
                "/v1/articles",
                data=io.BytesIO(ndjson.encode()),
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert status == 207, batch
            assert [item["status"] for item in batch["items"]] == ["refused", "accepted"]
            assert batch["items"][0]["errors"][0]["type"] == "too_large"
    finally:
        await service.stop()
    [short] = await articles_in(kafka_bootstrap, topics.articles.name, 1)
    assert short.title == "short"


async def test_a_chunked_body_over_the_limit_is_413(ingest: Ingest) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * (64 * 1024)

    status, body = await ingest.call(
        "POST", "/v1/articles", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert status == 413, body


async def test_a_batch_over_1000_articles_is_413(ingest: Ingest) -> None:
    lines = "\n".join(json.dumps({"title": f"t{i}"}) for i in range(1001))
    status, _body = await ingest.call(
        "POST",
        "/v1/articles",
        data=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert status == 413
    assert await record_count(ingest.bootstrap, ingest.topics.articles.name) == 0


async def test_health_readiness_and_metrics_answer(ingest: Ingest) -> None:
    await ingest.call("POST", "/v1/articles", json=ARTICLE)
    assert (await ingest.call("GET", "/healthz", key=None))[0] == 200
    status, ready = await ingest.call("GET", "/readyz", key=None)
    assert status == 200
    assert ready["kafka"] is True
    status, text = await ingest.call("GET", "/metrics", key=None)
    assert 'newsalert_ingest_articles_total{outcome="accepted",reason=""} 1.0' in text
    assert 'route="/v1/articles"' in text
    assert "newsalert_ingest_produce_seconds_bucket" in text
