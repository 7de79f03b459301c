"""The matcher worker: a faust app that turns the article stream into alerts.

A thin adapter around pure parts: `LiveRuleset` (rules from the compacted rules topic,
compiled in batches), `ArticleProcessor` (decode, match, group, build alerts) and the story
index. Every worker holds every rule and follows the whole rules topic itself; articles are
split between the workers of one consumer group.

At-least-once: faust acknowledges an article when the agent moves past it, and before it
commits offsets it flushes the producer, so an offset is committed only after the alerts of
every article before it were acknowledged by Kafka (acks=all). A worker killed in between
leaves the offsets uncommitted and the next owner of the partition matches those articles
again; their alerts carry the same deterministic ids.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from schemas.article import RejectedRecord
from schemas.watchlist import RuleRecord
from services.common.compacted import CompactedView
from services.common.kafka import encode
from services.common.metrics import exposition, new_registry
from services.common.settings import MatcherSettings
from services.common.topics import build_topics, record_key
from services.matcher.alerts import AlertRecord
from services.matcher.metrics import MatcherMetrics
from services.matcher.processing import ArticleProcessor, Processed
from services.matcher.ruleset import LiveRuleset, parse_rule_key
from services.matcher.story_view import StoryView

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class MatcherWorker:
    """One worker process: the faust app, the rules and story views, the metrics."""

    def __init__(self, settings: MatcherSettings) -> None:
        self.settings = settings
        self.topics = build_topics(
            settings.topic_prefix, settings.partitions, len(settings.retry_schedule_s)
        )
        self.registry = new_registry()
        self.metrics = MatcherMetrics.register(self.registry)
        self.ruleset = LiveRuleset()
        self.rules_view = CompactedView(
            settings.bootstrap_servers, self.topics.rules.name, RuleRecord
        )
        self.rules_view.subscribe(self._on_rule)
        self.stories = StoryView(
            settings.bootstrap_servers,
            self.topics.stories.name,
            timedelta(hours=settings.story_window_h),
        )
        self.processor = ArticleProcessor(self.stories.index)
        self._rules_changed = asyncio.Event()
        self._ready = asyncio.Event()
        self._lag: dict[Any, int] = {}
        self.app = self._build_app()

    # -- rules ---------------------------------------------------------------------------

    def _on_rule(self, key: str, record: RuleRecord | None) -> None:
        rule_key = parse_rule_key(key)
        if rule_key is None or (
            record is not None and key != record_key(record.tenant, record.rule.id)
        ):
            self.metrics.rule_errors.inc()
            log.warning("skipped a rule record whose key does not name it", extra={"key": key})
            return
        self.ruleset.stage(rule_key, record)
        self._rules_changed.set()

    def _compile(self) -> None:
        result = self.ruleset.compile_pending()
        # The compiled rules live until the next change: out of the collector's sight, they
        # are not re-traversed on every young-generation collection (millions of objects).
        gc.collect()
        gc.freeze()
        self.metrics.compile_seconds.observe(result.seconds)
        self.metrics.rules_loaded.set(len(self.ruleset.matcher))
        for error in result.errors:
            self.metrics.rule_errors.inc()
            log.warning("a rule failed to compile", extra={"rule_error": str(error)})
        log.info(
            "rules compiled",
            extra={"upserts": result.upserts, "deletes": result.deletes, "s": result.seconds},
        )

    async def _keep_rules_current(self) -> None:
        # Compiling on the event loop blocks it for the compile's duration (about 0.1 s per
        # batch at 10k rules); batches are what keeps that rare.
        while True:
            await self._rules_changed.wait()
            self._rules_changed.clear()
            self._compile()

    async def _start_views(self) -> None:
        await self.rules_view.start()
        await self.stories.start()
        self._compile()
        self._ready.set()
        log.info("matcher ready", extra={"rules": len(self.ruleset.matcher)})
        await self._keep_rules_current()

    # -- articles ------------------------------------------------------------------------

    async def _match_stream(self, stream: faust.StreamT[Any]) -> None:
        # No article is matched before every rule is loaded: an article matched against a
        # half-loaded ruleset would silently miss alerts.
        await self._ready.wait()
        async for event in stream.events():
            await self._handle(event)

    async def _handle(self, event: Any) -> None:
        message = event.message
        started = time.perf_counter()
        outcome: Processed = self.processor.process(event.value, self.ruleset.matcher, _now())
        if outcome.reason is not None:
            await self._dead_letter(message, outcome.reason)
            return
        await self._send_alerts(outcome.alerts)
        if outcome.story is not None:
            story = outcome.story
            await self._stories.send(key=story.article_id.encode(), value=encode(story))
            for evicted in self.stories.index.take_evicted():
                await self._stories.send(key=evicted.encode(), value=None)
            self.metrics.stories.set(len(self.stories.index))
        self.metrics.articles.labels("matched" if outcome.alerts else "unmatched").inc()
        if outcome.alerts:
            log.info(
                "alerts produced",
                extra={
                    "article_id": outcome.article_id,
                    "alert_ids": [a.alert_id for a in outcome.alerts],
                },
            )
        self.metrics.match_seconds.observe(time.perf_counter() - started)
        self._record_lag(message)

    async def _send_alerts(self, alerts: list[AlertRecord]) -> None:
        # Faust attaches each message to the event being processed and publishes it before
        # committing the event's offset: an offset is committed only after its alerts are
        # acknowledged.
        for alert in alerts:
            await self._alerts.send(key=alert.key, value=alert.value)
            self.metrics.alerts.labels(alert.severity).inc()

    async def _dead_letter(self, message: Any, reason: str) -> None:
        rejected = RejectedRecord(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key.decode("utf-8", "replace") if message.key else None,
            value_b64=base64.b64encode(message.value or b"").decode(),
            reason=reason,
            rejected_at=_now(),
        )
        await self._dlq.send(key=message.key, value=encode(rejected))
        self.metrics.articles.labels("dead_letter").inc()
        log.warning(
            "article record sent to the dead-letter topic",
            extra={"partition": message.partition, "offset": message.offset, "reason": reason},
        )

    def _record_lag(self, message: Any) -> None:
        tp = message.tp
        self._lag[tp] = max(0, self.app.consumer.highwater(tp) - message.offset - 1)
        self.metrics.consumer_lag.set(sum(self._lag.values()))

    # -- faust ---------------------------------------------------------------------------

    def _build_app(self) -> faust.App:
        s = self.settings
        # Faust creates its own folder, but not the ones above it.
        s.matcher_data_dir.mkdir(parents=True, exist_ok=True)
        app = faust.App(
            s.matcher_group,
            broker=[f"kafka://{host.strip()}" for host in s.bootstrap_servers.split(",")],
            value_serializer="raw",
            key_serializer="raw",
            producer_acks=-1,
            # An article's alerts and story record leave together: a few ms of linger turns
            # fifty produce requests into a few.
            producer_linger=0.005,
            # A worker killed without goodbye holds its partitions until its session expires:
            # 10 s (faust's default is 60) is how long the others wait before taking over.
            broker_session_timeout=10.0,
            broker_heartbeat_interval=1.0,
            # What a killed worker's successor redoes: at most this much work (faust: 2.8 s).
            broker_commit_interval=1.0,
            topic_partitions=s.partitions,
            topic_allow_declare=False,
            topic_disable_leader=True,
            store="memory://",
            # Faust wants a folder of its own even with the memory store; not the cwd.
            datadir=str(s.matcher_data_dir / s.matcher_group),
            consumer_auto_offset_reset="earliest",
            web_enabled=True,
            web_bind=s.matcher_host,
            web_host=s.matcher_host,
            web_port=s.matcher_port,
        )
        articles = app.topic(
            self.topics.articles.name, value_serializer="raw", key_serializer="raw"
        )
        self._alerts = app.topic(
            self.topics.alerts.name, value_serializer="raw", key_serializer="raw"
        )
        self._stories = app.topic(
            self.topics.stories.name, value_serializer="raw", key_serializer="raw"
        )
        self._dlq = app.topic(
            self.topics.articles_dlq.name, value_serializer="raw", key_serializer="raw"
        )
        app.agent(articles, name="match-articles")(self._match_stream)
        app.task(self._start_views)
        worker = self

        @app.page("/healthz")
        async def healthz(view: Any, request: Any) -> Any:
            return view.json({"status": "alive"})

        @app.page("/readyz")
        async def readyz(view: Any, request: Any) -> Any:
            ready = worker._ready.is_set()
            body = {"ready": ready, "rules": len(worker.ruleset.matcher)}
            return view.json(body, status=200 if ready else 503)

        @app.page("/metrics")
        async def metrics(view: Any, request: Any) -> Any:
            body, content_type = exposition(worker.registry)
            # aiohttp takes the charset separately; the exposition format is UTF-8 anyway.
            media = "; ".join(p for p in content_type.split("; ") if not p.startswith("charset="))
            return view.bytes(body, content_type=media)

        return app
