"""RSS/Atom polling: every configured feed fetched on an interval, its new items ingested.

An adapter: a conditional GET with aiohttp (ETag / Last-Modified, so an unchanged feed costs
a 304), the bytes to the pure `feeds.parse_feed`, each item to the shared `ArticleIntake`,
which drops ids already published. A feed that fails is logged with its URL and counted, and
never stops the other feeds or the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from schemas.api import ArticleStatus
from services.ingest.feeds import FeedParseResult, parse_feed
from services.ingest.intake import ArticleIntake
from services.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 10.0
MAX_FEED_BYTES = 5 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
# Feeds are few and mostly on different hosts; a bound keeps a long list polite all the same.
MAX_CONCURRENT_FETCHES = 8
USER_AGENT = "newsalert-feed-poller/1"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)

_ITEM_ERROR = re.compile(r"^item \d+: ")


class FeedConfigError(ValueError):
    """A configured feed URL that cannot be polled (not http or https, or no host)."""


class FeedOutcome(StrEnum):
    """How one poll of one feed ended (the `outcome` label of the polls counter)."""

    UPDATED = "updated"
    NOT_MODIFIED = "not_modified"
    HTTP_ERROR = "http_error"
    NETWORK_ERROR = "network_error"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"
    PUBLISH_ERROR = "publish_error"
    ERROR = "error"

    @property
    def is_ok(self) -> bool:
        """Whether the feed was read (changed or not) and all its new items published."""
        return self in (FeedOutcome.UPDATED, FeedOutcome.NOT_MODIFIED)


@dataclass(frozen=True, slots=True)
class FeedPoll:
    """One feed's part of a poll round.

    Attributes:
        url: The feed, as configured.
        outcome: How the poll ended.
        status: The HTTP status, when a response arrived.
        accepted: Items published by this poll.
        duplicates: Items already published (by an earlier poll, the API or another instance).
        skipped: Items the parser could not turn into articles, or too large to publish.
        error: Why the poll failed, or the first skipped item's reason; None when clean.
    """

    url: str
    outcome: FeedOutcome
    status: int | None = None
    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PollRound:
    """Every configured feed polled once; `number` counts rounds from 1."""

    number: int
    feeds: tuple[FeedPoll, ...]

    @property
    def accepted(self) -> int:
        """Items published in this round, over all feeds."""
        return sum(f.accepted for f in self.feeds)

    def feed(self, url: str) -> FeedPoll:
        """The poll of `url` in this round.

        Raises:
            KeyError: `url` is not a configured feed.
        """
        for poll in self.feeds:
            if poll.url == url:
                return poll
        raise KeyError(url)


@dataclass(frozen=True, slots=True)
class Validators:
    """A feed's cache validators (RFC 9110 section 8.8), echoed back as a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Validators:
        """The validators a 200 response carries (header names are case-insensitive)."""
        found = {name.lower(): value.strip() for name, value in headers.items()}
        return cls(found.get("etag") or None, found.get("last-modified") or None)

    def request_headers(self) -> dict[str, str]:
        """`If-None-Match` / `If-Modified-Since` for the next request; empty without validators."""
        headers: dict[str, str] = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def check_feed_urls(urls: Sequence[str]) -> list[str]:
    """The configured feed URLs, in order and without repeats, once each is pollable.

    Feed URLs are operator configuration, so the webhook SSRF policy does not apply; only the
    scheme is restricted, since aiohttp would otherwise be asked for schemes it cannot fetch.

    Raises:
        FeedConfigError: a URL is not http(s) or names no host; the message names it.
    """
    checked: list[str] = []
    for raw in urls:
        url = raw.strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise FeedConfigError(
                f"NEWSALERT_FEEDS: {redact_url(url)!r} is not an http:// or https:// URL; "
                "feeds are fetched over HTTP only"
            )
        if not parts.hostname:
            raise FeedConfigError(f"NEWSALERT_FEEDS: {redact_url(url)!r} names no host")
        if url not in checked:
            checked.append(url)
    return checked


def redact_url(url: str) -> str:
    """`url` without the password of its userinfo, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def is_document_error(result: FeedParseResult) -> bool:
    """Whether the document as a whole was unreadable (not XML, not a feed, entities)."""
    return not result.items and any(not _ITEM_ERROR.match(e) for e in result.errors)


class _TooLarge(Exception):
    pass


class FeedPoller:
    """Polls every configured feed once at start and then every `interval_s` seconds.

    Tests (and operators' tools) drive it without sleeping: `poll_once()` runs a round now and
    returns its summary, and `wait_for_round(n)` returns once `n` rounds have completed. Rounds
    never overlap: a `poll_once()` during the background round runs after it.
    """

    def __init__(
        self,
        urls: Sequence[str],
        intake: ArticleIntake,
        metrics: IngestMetrics,
        interval_s: float,
        *,
        timeout_s: float = FETCH_TIMEOUT_S,
        max_bytes: int = MAX_FEED_BYTES,
    ) -> None:
        """Check the URLs and wire the poller; nothing is fetched before `start()`.

        Raises:
            FeedConfigError: a URL is not http(s) or names no host.
        """
        self.urls = check_feed_urls(urls)
        self._intake = intake
        self._metrics = metrics
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._validators = {url: Validators() for url in self.urls}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._round_lock = asyncio.Lock()
        self._round_done = asyncio.Condition()
        self._fetch_slots = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)
        self.last_round: PollRound | None = None
        for outcome in FeedOutcome:
            metrics.feed_polls.labels(outcome.value)
        for item_outcome in ("accepted", "duplicate", "skipped"):
            metrics.feed_items.labels(item_outcome)

    async def start(self) -> None:
        """Open the HTTP session and start polling in the background (first round at once)."""
        if self._task is not None:
            return
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._task = asyncio.create_task(self._run(), name="ingest-feed-poller")

    async def stop(self) -> None:
        """Cancel the polling (a round in progress is abandoned) and close the session."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Rounds start every interval_s (a slow round delays the next, never overlaps it).
            next_round = loop.time() + self._interval_s
            try:
                await self.poll_once()
            except Exception:
                # poll_once contains every feed's failure; this is the last line of defence.
                log.exception("feed poll round failed")
            await asyncio.sleep(max(0.0, next_round - loop.time()))

    async def poll_once(self) -> PollRound:
        """Poll every feed now (concurrently, at most a few at a time); return the round.

        Raises:
            RuntimeError: the poller was not started.
        """
        async with self._round_lock:
            if self._session is None:
                raise RuntimeError("FeedPoller.poll_once() before start()")
            session = self._session
            polls = await asyncio.gather(*(self._poll_feed(session, url) for url in self.urls))
            number = self.last_round.number + 1 if self.last_round else 1
            done = PollRound(number, tuple(polls))
        async with self._round_done:
            self.last_round = done
            self._round_done.notify_all()
        log.info(
            "feed round %d: %d feeds, %d new articles",
            done.number,
            len(done.feeds),
            done.accepted,
            extra={"round": done.number, "accepted": done.accepted},
        )
        return done

    async def wait_for_round(self, number: int) -> PollRound:
        """The latest round once at least `number` rounds have completed.

        Waits without a deadline; callers that need one wrap it in `asyncio.timeout`.
        """
        async with self._round_done:
            await self._round_done.wait_for(
                lambda: self.last_round is not None and self.last_round.number >= number
            )
            assert self.last_round is not None
            return self.last_round

    async def _poll_feed(self, session: aiohttp.ClientSession, url: str) -> FeedPoll:
        started = time.perf_counter()
        async with self._fetch_slots:
            try:
                poll = await self._fetch_and_ingest(session, url)
            except Exception as exc:
                # Whatever went wrong with this feed must not cost the others their poll.
                log.exception(
                    "feed %s: poll failed", redact_url(url), extra={"feed": redact_url(url)}
                )
                poll = FeedPoll(url, FeedOutcome.ERROR, error=f"{type(exc).__name__}: {exc}")
        self._metrics.feed_poll_seconds.observe(time.perf_counter() - started)
        self._metrics.feed_polls.labels(poll.outcome.value).inc()
        if not poll.outcome.is_ok and poll.outcome is not FeedOutcome.ERROR:
            log.warning(
                "feed %s: %s: %s",
                redact_url(url),
                poll.outcome.value,
                poll.error,
                extra={"feed": redact_url(url), "outcome": poll.outcome.value},
            )
        return poll

    async def _fetch_and_ingest(self, session: aiohttp.ClientSession, url: str) -> FeedPoll:
        conditional = self._validators[url].request_headers()
        try:
            async with session.get(url, headers=conditional) as response:
                status = response.status
                if status == 304:
                    return FeedPoll(url, FeedOutcome.NOT_MODIFIED, status)
                if status != 200:
                    return FeedPoll(
                        url,
                        FeedOutcome.HTTP_ERROR,
                        status,
                        error=f"HTTP {status} {response.reason}",
                    )
                data = await self._read_capped(response)
                validators = Validators.from_headers(response.headers)
        except _TooLarge:
            return FeedPoll(
                url, FeedOutcome.TOO_LARGE, 200, error=f"larger than {self._max_bytes} bytes"
            )
        except TimeoutError:
            return FeedPoll(url, FeedOutcome.TIMEOUT, error=f"no answer in {self._timeout_s} s")
        except aiohttp.ClientError as exc:
            return FeedPoll(url, FeedOutcome.NETWORK_ERROR, error=f"{type(exc).__name__}: {exc}")

        # Parsing up to MAX_FEED_BYTES of XML takes a while; off the loop, the API stays quick.
        result = await asyncio.to_thread(parse_feed, data)
        if is_document_error(result):
            return FeedPoll(url, FeedOutcome.UNREADABLE, status, error="; ".join(result.errors))
        return await self._ingest(url, status, result, validators)

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        # The declared length is checked first, then the bytes actually read (decompressed), so
        # neither a lying header nor a compression bomb gets past the cap.
        if response.content_length is not None and response.content_length > self._max_bytes:
            raise _TooLarge
        body = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            body += chunk
            if len(body) > self._max_bytes:
                raise _TooLarge
        return bytes(body)

    async def _ingest(
        self, url: str, status: int, result: FeedParseResult, validators: Validators
    ) -> FeedPoll:
        skipped = sum(bool(_ITEM_ERROR.match(e)) for e in result.errors)
        if skipped:
            self._intake.refused("invalid", skipped)
            self._metrics.feed_items.labels("skipped").inc(skipped)
        if result.errors:
            log.warning(
                "feed %s: read with errors, %d items skipped: %s",
                redact_url(url),
                skipped,
                "; ".join(result.errors)[:1000],
                extra={"feed": redact_url(url), "skipped": skipped},
            )
        accepted = duplicates = 0
        refusal: str | None = None
        for item in result.items:
            try:
                receipt = await self._intake.accept(item)
            except Exception as exc:
                # Kafka did not take it: keep the old validators so the next round re-reads
                # the feed instead of getting a 304 and losing the rest of these items.
                return FeedPoll(
                    url,
                    FeedOutcome.PUBLISH_ERROR,
                    status,
                    accepted,
                    duplicates,
                    skipped,
                    error=f"{type(exc).__name__}: {exc}",
                )
            if receipt.status is ArticleStatus.ACCEPTED:
                accepted += 1
                self._metrics.feed_items.labels("accepted").inc()
            elif receipt.status is ArticleStatus.REFUSED:  # too large: the rest go on
                skipped += 1
                self._metrics.feed_items.labels("skipped").inc()
                refusal = refusal or f"{receipt.article_id}: {receipt.errors[0]['msg']}"
                log.warning(
                    "feed %s: an item was refused: %s",
                    redact_url(url),
                    receipt.errors[0]["msg"],
                    extra={"feed": redact_url(url), "article_id": receipt.article_id},
                )
            else:
                duplicates += 1
                self._metrics.feed_items.labels("duplicate").inc()
        self._validators[url] = validators
        first_error = result.errors[0] if result.errors else refusal
        return FeedPoll(
            url, FeedOutcome.UPDATED, status, accepted, duplicates, skipped, error=first_error
        )
