"""The ingest service's lifecycle: Kafka clients, views and feed poller up, the app served."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn

from schemas.health import EndpointStatus
from schemas.subscription import Subscription
from schemas.watchlist import RuleRecord
from services.common.compacted import CompactedView
from services.common.dead_letters import DeadLetterView
from services.common.kafka import ensure_topics, make_producer, wait_until_ready
from services.common.metrics import new_registry
from services.common.settings import IngestSettings
from services.common.ssrf import UrlPolicy
from services.common.topics import build_topics
from services.ingest.api import IngestState, create_app
from services.ingest.auth import ApiKeys
from services.ingest.metrics import IngestMetrics
from services.ingest.poller import FeedPoller, check_feed_urls
from services.ingest.publisher import Publisher
from services.ingest.views import RecentArticleIds

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class IngestService:
    """Starts the producer, the views and the feed poller, serves the API, stops it all in order.

    Raises (at construction): `FeedConfigError` for a feed URL that is not http(s), so bad
    configuration fails before any connection is made.
    """

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.topics = build_topics(
            settings.topic_prefix, settings.partitions, len(settings.retry_schedule_s)
        )
        sources = [settings.api_keys]
        if settings.api_keys_file is not None:
            sources.append(settings.api_keys_file.read_text("utf-8"))
        self.keys = ApiKeys.parse(*sources)
        check_feed_urls(settings.feeds)
        self.poller: FeedPoller | None = None
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._producer: Any = None
        self._stack: list[Any] = []

    async def start(self) -> IngestState:
        """Connect to Kafka, create missing topics, load the views; return the app's state."""
        s = self.settings
        await wait_until_ready(s.bootstrap_servers, 30)
        await ensure_topics(s.bootstrap_servers, self.topics.all(), s.replication_factor)
        registry = new_registry()
        metrics = IngestMetrics.register(registry)
        self._producer = make_producer(s.bootstrap_servers)
        await self._producer.start()
        rules = CompactedView(s.bootstrap_servers, self.topics.rules.name, RuleRecord)
        subscriptions = CompactedView(
            s.bootstrap_servers, self.topics.subscriptions.name, Subscription
        )
        endpoint_status = CompactedView(
            s.bootstrap_servers, self.topics.endpoint_status.name, EndpointStatus
        )
        dead_letters = DeadLetterView(s.bootstrap_servers, self.topics.deliveries_dlq.name)
        recent = RecentArticleIds(
            s.bootstrap_servers, self.topics.articles.name, s.dedupe_window_h * 3600
        )
        for view in (rules, subscriptions, endpoint_status, dead_letters, recent):
            await view.start()
            self._stack.append(view)

        async def kafka_ready() -> bool:
            try:
                await wait_until_ready(s.bootstrap_servers, 2)
            except TimeoutError:
                return False
            return True

        state = IngestState(
            keys=self.keys,
            publisher=Publisher(self._producer, self.topics, metrics.produce_seconds),
            rules=rules,
            subscriptions=subscriptions,
            endpoint_status=endpoint_status,
            dead_letters=dead_letters,
            recent=recent,
            metrics=metrics,
            registry=registry,
            url_policy=UrlPolicy.from_strings(s.webhook_allow_http, s.webhook_allow),
            max_batch=s.max_batch,
            max_body_bytes=s.max_body_bytes,
            secret_overlap=timedelta(hours=s.secret_overlap_h),
            kafka_ready=kafka_ready,
            now=_now,
        )
        if s.feeds:
            # After the views: the first round must already see the recent article ids.
            self.poller = FeedPoller(s.feeds, state.intake, metrics, s.feed_interval_s)
            await self.poller.start()
        return state

    async def serve(self, state: IngestState, port: int | None = None) -> int:
        """Serve the API in the background; return the bound port (0 picks a free one)."""
        config = uvicorn.Config(
            create_app(state),
            host=self.settings.ingest_host,
            port=self.settings.ingest_port if port is None else port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(self._server.serve(), name="ingest-http")
        while not self._server.started:
            if self._serving.done():
                await self._serving  # re-raise why it could not start
            await asyncio.sleep(0.01)
        bound: int = self._server.servers[0].sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        """Stop polling, finish in-flight requests, then close the views and the producer."""
        if self.poller is not None:
            await self.poller.stop()
            self.poller = None
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving
        for view in reversed(self._stack):
            await view.stop()
        self._stack.clear()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
