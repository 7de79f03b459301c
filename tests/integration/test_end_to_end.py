"""The whole system as separate processes: the seeds in, signed webhooks out."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import yaml

from schemas.article import ArticleIn
from services.common.topics import Topics
from services.demo.receiver import Receiver, running_receiver
from services.demo.scenario import SEEDS, await_deliveries, configure, ingest_seeds, verified
from services.demo.stack import Stack
from services.ingest.identity import complete_article
from services.ingest.text_article import article_in_from_text
from services.matcher.alerts import match_record
from services.matcher.engine.loading import parse_watchlist
from services.matcher.engine.matcher import Matcher

TENANT = "demo"


@pytest.fixture
async def stack(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    running = Stack(
        tmp_path, {TENANT: "na_" + secrets.token_urlsafe(24)}, topic_prefix, kafka_bootstrap
    )
    await running.start()
    try:
        yield running
    finally:
        await asyncio.to_thread(running.stop)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


def _offline_alert_ids() -> set[str]:
    """What `newsalert match` computes for the seeds, cleaned and identified as ingest does."""
    loaded = parse_watchlist((SEEDS / "watchlist.yaml").read_text("utf-8"))
    matcher, errors = Matcher.build((loaded.tenant, r) for r in loaded.rules)
    assert not errors
    sources = yaml.safe_load((SEEDS / "sources.yaml").read_text("utf-8"))
    ids = set()
    for path in sorted(SEEDS.glob("*.txt")):
        parsed: ArticleIn = article_in_from_text(
            path.read_text("utf-8"), url=sources[path.name], language="en"
        )
        article = complete_article(parsed, datetime.now(UTC))
        ids |= {
            match_record(m, article.article_id).alert_id for m in matcher.match(article).matches
        }
    return ids


async def test_the_seeds_become_signed_webhooks_and_kcat_sees_the_same_alerts(
    stack: Stack, receiver: Receiver, topics: Topics, kafka_bootstrap: str
) -> None:
    key = stack.api_keys[TENANT]
    async with aiohttp.ClientSession() as http:
        secrets_by_id = await configure(http, stack.url("ingest"), key, receiver)
        articles = await ingest_seeds(http, stack.url("ingest"), key)
        delivered = await await_deliveries(stack, receiver, len(articles))
    expected = _offline_alert_ids()
    assert delivered == len(expected)
    rows = verified(receiver, secrets_by_id)
    assert all(row.signature_ok for row in rows)
    assert {row.alert.alert_id for row in rows} == expected
    assert len({row.alert.story_id for row in rows}) == 1, "the two seeds are one story"

    kcat = shutil.which("kcat")
    assert kcat is not None, "kcat is installed by `make system-deps`"
    process = await asyncio.create_subprocess_exec(
        kcat,
        "-b",
        kafka_bootstrap,
        "-C",
        "-t",
        topics.alerts.name,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        "%s\\n",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    seen = {json.loads(line)["alert_id"] for line in out.decode().splitlines() if line}
    assert seen == expected


def _log_lines(stack: Stack, service: str) -> list[dict[str, object]]:
    lines = stack.processes[service].log_path.read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def _logged_as_delivered(stack: Stack, wanted: set[str], timeout_s: float = 30.0) -> set[str]:
    """The alert ids the notifier's log says were delivered, once they include `wanted`.

    The notifier writes that line after the receiver has answered, so it may trail the
    webhook by a moment; a log file offers nothing to await but its own growth.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        delivered = {
            str(line["alert_id"])
            for line in _log_lines(stack, "notifier")
            if line.get("outcome") == "delivered"
        }
        if wanted <= delivered or loop.time() > deadline:
            return delivered
        await asyncio.sleep(0.05)


async def test_the_logs_of_all_three_services_are_json_and_follow_one_article(
    stack: Stack, receiver: Receiver
) -> None:
    key = stack.api_keys[TENANT]
    async with aiohttp.ClientSession() as http:
        await configure(http, stack.url("ingest"), key, receiver)
        articles = await ingest_seeds(http, stack.url("ingest"), key)
        await await_deliveries(stack, receiver, len(articles))
    alert_ids = {r.headers["webhook-id"] for r in receiver.requests}
    first = articles[0]
    ingest = _log_lines(stack, "ingest")
    matcher = _log_lines(stack, "matcher")
    notifier = _log_lines(stack, "notifier")
    assert any(line.get("article_id") == first for line in ingest)
    produced = [line for line in matcher if line.get("article_id") == first]
    assert produced
    assert set(produced[0]["alert_ids"]) <= alert_ids  # type: ignore[arg-type]
    assert await _logged_as_delivered(stack, alert_ids) == alert_ids
    assert all(line["service"] == "notifier" for line in notifier)
