"""Feed polling against a real Kafka broker and feeds served by aiohttp on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from schemas.identity import article_id
from services.common.settings import IngestSettings
from services.common.topics import Topics
from services.demo.receiver import serving
from services.ingest.api import IngestState
from services.ingest.auth import hash_key
from services.ingest.poller import FeedOutcome, FeedPoller, PollRound
from services.ingest.service import IngestService
from tests.support.kafka_io import articles_in, record_count

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
RSS = (FEEDS / "rss2.xml").read_bytes()
ATOM = (FEEDS / "atom.xml").read_bytes()
MALFORMED = (FEEDS / "malformed.xml").read_bytes()
RSS_TITLES = {
    "Chinese defense minister heads to Moscow",
    "Kremlin denies infighting & leaks",
    "AT&T and x < y: plain text stays as written",
}
ATOM_TITLES = {"Verteidigungsminister Li reist nach Moskau", "Only a summary here"}
KEY = "na_acme-key-for-feed-tests-0123456"
# The background loop polls once at start; later rounds are driven by poll_once().
ONE_HOUR_S = 3600.0


@dataclass
class Document:
    """What the test server answers at one path."""

    body: bytes = b""
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    streamed: bool = False  # chunked, without Content-Length
    hang: bool = False  # never answer (until the server stops)


@dataclass
class FeedServer:
    base: str
    documents: dict[str, Document]
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [headers for seen_path, headers in self.seen if seen_path == path]


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    release = asyncio.Event()
    server = FeedServer("", {})

    async def handle(request: web.Request) -> web.StreamResponse:
        server.seen.append((request.path, dict(request.headers)))
        doc = server.documents.get(request.path)
        if doc is None:
            return web.Response(status=404)
        if doc.hang:
            await release.wait()
        if doc.status != 200:
            return web.Response(status=doc.status, text="the feed server failed")
        headers: dict[str, str] = {}
        if doc.etag is not None:
            headers["ETag"] = doc.etag
        if doc.last_modified is not None:
            headers["Last-Modified"] = doc.last_modified
        unchanged = (doc.etag is not None and request.headers.get("If-None-Match") == doc.etag) or (
            doc.etag is None
            and doc.last_modified is not None
            and request.headers.get("If-Modified-Since") == doc.last_modified
        )
        if unchanged:
            return web.Response(status=304, headers=headers)
        if doc.streamed:
            response = web.StreamResponse(headers={**headers, "Content-Type": "application/xml"})
            await response.prepare(request)
            for start in range(0, len(doc.body), 4096):
                await response.write(doc.body[start : start + 4096])
            await response.write_eof()
            return response
        return web.Response(body=doc.body, headers=headers, content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/{name}", handle)
    async with serving(app) as server.base:
        try:
            yield server
        finally:
            release.set()


def _settings(bootstrap: str, prefix: str, feeds: list[str]) -> IngestSettings:
    return IngestSettings(
        bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        partitions=3,
        retry_schedule_s=[1, 2, 3],
        api_keys=f"acme:{hash_key(KEY)}",
        ingest_port=0,
        feeds=feeds,
        feed_interval_s=ONE_HOUR_S,
    )


@asynccontextmanager
async def running_ingest(
    bootstrap: str, prefix: str, feeds: list[str]
) -> AsyncIterator[tuple[IngestService, IngestState]]:
    service = IngestService(_settings(bootstrap, prefix, feeds))
    try:
        state = await service.start()
        yield service, state
    finally:
        await service.stop()


def _poller(service: IngestService) -> FeedPoller:
    assert service.poller is not None
    return service.poller


async def _first_round(poller: FeedPoller) -> PollRound:
    """The round the poller runs at start, awaited with a deadline (never a sleep)."""
    async with asyncio.timeout(30):
        return await poller.wait_for_round(1)


def _polls(state: IngestState, outcome: FeedOutcome) -> float:
    value = state.registry.get_sample_value(
        "newsalert_ingest_feed_polls_total", {"outcome": outcome.value}
    )
    assert value is not None
    return value


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_feed_items_become_articles_at_start_and_a_repoll_publishes_nothing_new(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, feed_server: FeedServer
) -> None:
    # No validators on either feed: the second poll reads them in full, and only the
    # article ids (RecentArticleIds) keep it from publishing again.
    feed_server.documents["/rss.xml"] = Document(RSS)
    feed_server.documents["/atom.xml"] = Document(ATOM)
    rss, atom = feed_server.url("/rss.xml"), feed_server.url("/atom.xml")
    async with running_ingest(kafka_bootstrap, topic_prefix, [rss, atom]) as (service, _):
        poller = _poller(service)
        first = await _first_round(poller)

        assert (first.feed(rss).outcome, first.feed(rss).accepted) == (FeedOutcome.UPDATED, 3)
        assert (first.feed(atom).outcome, first.feed(atom).accepted) == (FeedOutcome.UPDATED, 2)
        articles = await articles_in(kafka_bootstrap, topics.articles.name, 5)
        assert {a.title for a in articles} == RSS_TITLES | ATOM_TITLES
        by_title = {a.title: a for a in articles}
        # Ids come from the links, as the API would derive them for the same URL.
        li = by_title["Chinese defense minister heads to Moscow"]
        assert li.url is not None
        assert li.article_id == article_id(None, li.url, li.title, li.body)
        assert by_title["Only a summary here"].source == "news.example.de"

        second = await poller.poll_once()

        assert second.number == 2
        assert [(f.outcome, f.accepted, f.duplicates) for f in second.feeds] == [
            (FeedOutcome.UPDATED, 0, 3),
            (FeedOutcome.UPDATED, 0, 2),
        ]
        assert await record_count(kafka_bootstrap, topics.articles.name) == 5


@pytest.mark.parametrize(
    ("document", "conditional_header"),
    [
        (Document(ATOM, etag='"atom-v1"'), ("If-None-Match", '"atom-v1"')),
        (
            Document(ATOM, last_modified="Sat, 15 Apr 2023 12:00:00 GMT"),
            ("If-Modified-Since", "Sat, 15 Apr 2023 12:00:00 GMT"),
        ),
    ],
    ids=["etag", "last-modified"],
)
async def test_an_unchanged_feed_costs_a_304_through_its_validators(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    feed_server: FeedServer,
    document: Document,
    conditional_header: tuple[str, str],
) -> None:
    feed_server.documents["/atom.xml"] = document
    atom = feed_server.url("/atom.xml")
    async with running_ingest(kafka_bootstrap, topic_prefix, [atom]) as (service, state):
        poller = _poller(service)
        await _first_round(poller)

        second = await poller.poll_once()

        assert second.feed(atom).outcome is FeedOutcome.NOT_MODIFIED
        assert second.feed(atom).status == 304
        first_request, second_request = feed_server.requests_to("/atom.xml")
        name, value = conditional_header
        assert name not in first_request
        assert second_request[name] == value
        assert _polls(state, FeedOutcome.NOT_MODIFIED) == 1
        assert await record_count(kafka_bootstrap, topics.articles.name) == 2


async def test_a_changed_feed_publishes_only_its_new_items(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, feed_server: FeedServer
) -> None:
    feed_server.documents["/rss.xml"] = Document(RSS, etag='"v1"')
    rss = feed_server.url("/rss.xml")
    async with running_ingest(kafka_bootstrap, topic_prefix, [rss]) as (service, _):
        poller = _poller(service)
        await _first_round(poller)
        newer = RSS.replace(
            b"<item>",
            b"<item><title>Fresh item</title><link>https://www.example.com/fresh</link>"
            b"<description>New today.</description></item><item>",
            1,
        )
        feed_server.documents["/rss.xml"] = Document(newer, etag='"v2"')

        second = await poller.poll_once()

        assert feed_server.requests_to("/rss.xml")[1]["If-None-Match"] == '"v1"'
        poll = second.feed(rss)
        assert (poll.outcome, poll.accepted, poll.duplicates) == (FeedOutcome.UPDATED, 1, 3)
        articles = await articles_in(kafka_bootstrap, topics.articles.name, 4)
        assert {a.title for a in articles} == {*RSS_TITLES, "Fresh item"}
        # And the new validator is the one sent next time.
        assert (await poller.poll_once()).feed(rss).outcome is FeedOutcome.NOT_MODIFIED


async def test_an_item_too_large_for_a_kafka_record_is_skipped_and_the_rest_published(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, feed_server: FeedServer
) -> None:
    # Full-text feeds can carry a body longer than one Kafka record holds (2 MB here). Kafka
    # refuses it on every try: published in order, it stopped the feed's later items for good.
    huge = (
        b"<item><title>Long read</title><link>https://www.example.com/long</link>"
        b"<description>" + "中文".encode() * 240_000 + b"</description></item><item>"
    )
    feed_server.documents["/rss.xml"] = Document(RSS.replace(b"<item>", huge, 1))
    rss = feed_server.url("/rss.xml")
    async with running_ingest(kafka_bootstrap, topic_prefix, [rss]) as (service, _):
        poll = (await _first_round(_poller(service))).feed(rss)

    assert (poll.outcome, poll.accepted, poll.skipped) == (FeedOutcome.UPDATED, 3, 1)
    articles = await articles_in(kafka_bootstrap, topics.articles.name, 3)
    assert {a.title for a in articles} == RSS_TITLES


async def test_failing_feeds_are_counted_and_do_not_stop_the_good_one(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, feed_server: FeedServer
) -> None:
    feed_server.documents["/error.xml"] = Document(status=500)
    feed_server.documents["/malformed.xml"] = Document(MALFORMED)
    feed_server.documents["/page.html"] = Document(b"<html><body>not a feed</body></html>")
    feed_server.documents["/rss.xml"] = Document(RSS)
    refused = f"http://127.0.0.1:{_closed_port()}/feed.xml"
    urls = {
        "error": feed_server.url("/error.xml"),
        "malformed": feed_server.url("/malformed.xml"),
        "page": feed_server.url("/page.html"),
        "missing": feed_server.url("/missing.xml"),
        "refused": refused,
        "good": feed_server.url("/rss.xml"),
    }
    async with running_ingest(kafka_bootstrap, topic_prefix, list(urls.values())) as (
        service,
        state,
    ):
        first = await _first_round(_poller(service))

        outcomes = {name: first.feed(url).outcome for name, url in urls.items()}
        assert outcomes == {
            "error": FeedOutcome.HTTP_ERROR,
            "malformed": FeedOutcome.UNREADABLE,
            "page": FeedOutcome.UNREADABLE,
            "missing": FeedOutcome.HTTP_ERROR,
            "refused": FeedOutcome.NETWORK_ERROR,
            "good": FeedOutcome.UPDATED,
        }
        assert first.feed(urls["error"]).status == 500
        assert "not well-formed" in (first.feed(urls["malformed"]).error or "")
        assert first.feed(urls["good"]).accepted == 3
        assert _polls(state, FeedOutcome.HTTP_ERROR) == 2
        assert _polls(state, FeedOutcome.UNREADABLE) == 2
        assert _polls(state, FeedOutcome.NETWORK_ERROR) == 1
        assert _polls(state, FeedOutcome.UPDATED) == 1
        articles = await articles_in(kafka_bootstrap, topics.articles.name, 3)
        assert {a.title for a in articles} == RSS_TITLES

        # The poller is still alive: a failing feed that recovers is read the next round.
        feed_server.documents["/error.xml"] = Document(ATOM)
        second = await _poller(service).poll_once()

        assert second.feed(urls["error"]).accepted == 2
        assert second.feed(urls["good"]).duplicates == 3


@pytest.mark.parametrize("streamed", [False, True], ids=["declared-length", "chunked"])
async def test_a_feed_larger_than_the_cap_is_refused_unread(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    feed_server: FeedServer,
    streamed: bool,
) -> None:
    padded = RSS.replace(b"</channel>", b"<!--" + b"x" * 64 * 1024 + b"--></channel>")
    feed_server.documents["/big.xml"] = Document(padded, streamed=streamed)
    big = feed_server.url("/big.xml")
    async with running_ingest(kafka_bootstrap, topic_prefix, []) as (service, state):
        assert service.poller is None  # no feeds configured, no poller
        poller = FeedPoller([big], state.intake, state.metrics, ONE_HOUR_S, max_bytes=16 * 1024)
        await poller.start()
        try:
            done = await _first_round(poller)
        finally:
            await poller.stop()

    assert done.feed(big).outcome is FeedOutcome.TOO_LARGE
    assert _polls(state, FeedOutcome.TOO_LARGE) == 1
    assert await record_count(kafka_bootstrap, topics.articles.name) == 0


async def test_a_feed_that_does_not_answer_in_time_is_a_timeout_and_others_still_arrive(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, feed_server: FeedServer
) -> None:
    feed_server.documents["/slow.xml"] = Document(RSS, hang=True)
    feed_server.documents["/atom.xml"] = Document(ATOM)
    slow, atom = feed_server.url("/slow.xml"), feed_server.url("/atom.xml")
    async with running_ingest(kafka_bootstrap, topic_prefix, []) as (_, state):
        poller = FeedPoller([slow, atom], state.intake, state.metrics, ONE_HOUR_S, timeout_s=0.5)
        await poller.start()
        try:
            done = await _first_round(poller)
        finally:
            await poller.stop()

    assert done.feed(slow).outcome is FeedOutcome.TIMEOUT
    assert done.feed(atom).accepted == 2


async def test_an_article_submitted_through_the_api_is_a_duplicate_in_a_feed(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, feed_server: FeedServer
) -> None:
    feed_server.documents["/rss.xml"] = Document(RSS)
    rss = feed_server.url("/rss.xml")
    async with running_ingest(kafka_bootstrap, topic_prefix, []) as (service, state):
        port = await service.serve(state, port=0)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{port}/v1/articles",
                json={"url": "https://www.example.com/business/att", "title": "AT&T"},
                headers={"Authorization": f"Bearer {KEY}"},
            ) as response,
        ):
            assert response.status == 202
        poller = FeedPoller([rss], state.intake, state.metrics, ONE_HOUR_S)
        await poller.start()
        try:
            done = await _first_round(poller)
        finally:
            await poller.stop()

    assert (done.feed(rss).accepted, done.feed(rss).duplicates) == (2, 1)
    assert await record_count(kafka_bootstrap, topics.articles.name) == 3
