"""The matcher worker: a faust app that turns the article stream into alerts.

A thin adapter around pure parts: `LiveRuleset` (rules from the compacted rules topic,
compiled in batches), `ArticleProcessor` (decode, match, group, build alerts) and the story
index. Every worker holds every rule and follows the whole rules topic itself; articles are
split between the workers of one consumer group.

At-least-once: an article's alerts, story record and any dead letter leave through a
`BatchingProducer` (idempotent, acks=all), and the article is acknowledged to faust only when
Kafka has stored every one of them; faust commits only acknowledged offsets. A worker killed in
between leaves the offsets uncommitted and the next owner of the partition matches those
articles again; their alerts carry the same deterministic ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import faust

from schemas.watchlist import RuleRecord
from services.common.batching_producer import BatchingProducer, Delivery, Record
from services.common.compacted import CompactedView
from services.common.kafka import KafkaError, encode, make_producer
from services.common.lag import LagProbe, Partition, report_lag
from services.common.metrics import exposition, new_registry
from services.common.settings import MatcherSettings
from services.common.topics import build_topics, record_key
from services.matcher.metrics import MatcherMetrics
from services.matcher.processing import (
    ArticleProcessor,
    Processed,
    dead_letter_key,
    rejected_record,
)
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
        self.lag = LagProbe(settings.bootstrap_servers, settings.matcher_group)
        self._lag_task: asyncio.Task[None] | None = None
        self.stories = StoryView(
            settings.bootstrap_servers,
            self.topics.stories.name,
            timedelta(hours=settings.story_window_h),
        )
        self.processor = ArticleProcessor(self.stories.index)
        self._rules_changed = asyncio.Event()
        self._ready = asyncio.Event()
        self._producer: Any = None
        self._batches: BatchingProducer | None = None
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
        await self._start_producer()
        await self.rules_view.start()
        await self.stories.start()
        self._compile()
        self._ready.set()
        log.info("matcher ready", extra={"rules": len(self.ruleset.matcher)})
        # A task of its own, which outlives any failed reading (the probe connects at the
        # first, and again after a failure): lag must never stop rule changes from compiling.
        self._lag_task = asyncio.get_running_loop().create_task(
            report_lag(
                self.lag,
                self._owned_articles,
                self.metrics.consumer_lag,
                self.settings.lag_interval_s,
            )
        )
        await self._keep_rules_current()

    def _owned_articles(self) -> list[Partition]:
        articles = self.topics.articles.name
        return [
            (tp.topic, tp.partition)
            for tp in self.app.consumer.assignment()
            if tp.topic == articles
        ]

    # -- producing -----------------------------------------------------------------------

    async def _start_producer(self) -> None:
        self._producer = make_producer(
            self.settings.bootstrap_servers, client_id="newsalert-matcher"
        )
        await self._producer.start()
        batches = BatchingProducer(self._producer, on_retry=self._on_retry)
        topics = self.topics
        await batches.prepare([topics.alerts.name, topics.stories.name, topics.articles_dlq.name])
        self._batches = batches

    def _on_retry(self, topic: str, error: KafkaError) -> None:
        self.metrics.produce_retries.inc()

    async def _stop_producer(self) -> None:
        if self._batches is not None:
            await self._batches.close()
        if self._producer is not None:
            await self._producer.stop()

    async def _stop_lag(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._lag_task
        await self.lag.stop()

    # -- articles ------------------------------------------------------------------------

    async def _match_stream(self, stream: faust.StreamT[Any]) -> None:
        # No article is matched before every rule is loaded: an article matched against a
        # half-loaded ruleset would silently miss alerts.
        await self._ready.wait()
        # Faust would acknowledge an article as soon as the loop moves past it; here it is
        # acknowledged when Kafka has stored what it produced, which may be a few articles
        # later. The bounded queue is the backpressure: a slow broker pauses the matching.
        manual = cast(faust.Stream[Any], stream).noack()  # StreamT does not declare it
        unacked: asyncio.Queue[tuple[Any, Delivery]] = asyncio.Queue(
            self.settings.matcher_max_in_flight
        )
        drain_s = 10.0
        acker = asyncio.get_running_loop().create_task(self._ack_when_stored(manual, unacked))
        try:
            async for event in manual.events():
                await unacked.put((event, self._handle(event)))
        finally:
            # Stopping (SIGTERM, rebalance): what was matched is acknowledged once stored, so
            # the final commit covers it and the next owner does not redo it.
            try:
                await asyncio.wait_for(unacked.join(), drain_s)
            except TimeoutError:
                log.warning("stopped with alerts not yet stored; their articles will be redone")
            acker.cancel()

    async def _ack_when_stored(
        self, stream: faust.StreamT[Any], unacked: asyncio.Queue[tuple[Any, Delivery]]
    ) -> None:
        while True:
            event, delivery = await unacked.get()
            await delivery
            await stream.ack(event)
            unacked.task_done()

    def _handle(self, event: Any) -> Delivery:
        assert self._batches is not None, "articles are matched only once the worker is ready"
        message = event.message
        started = time.perf_counter()
        outcome: Processed = self.processor.process(event.value, self.ruleset.matcher, _now())
        if outcome.article_id is None:  # not an article
            return self._batches.send([self._dead_letter(message, outcome.reason or "")])
        topics = self.topics
        records: list[Record] = [(topics.alerts.name, a.key, a.value) for a in outcome.alerts]
        if outcome.story is not None:
            story = outcome.story
            records.append((topics.stories.name, story.article_id.encode(), encode(story)))
            records.extend(
                (topics.stories.name, evicted.encode(), None)
                for evicted in self.stories.index.take_evicted()
            )
            self.metrics.stories.set(len(self.stories.index))
        if outcome.reason is not None:  # alerts too large to produce: the article says which
            self.metrics.alerts_too_large.inc(len(outcome.oversized))
            records.append(self._dead_letter(message, outcome.reason))
        delivery = self._batches.send(records)
        if outcome.reason is None:
            self.metrics.articles.labels("matched" if outcome.alerts else "unmatched").inc()
        if outcome.alerts:
            for severity, count in Counter(a.severity for a in outcome.alerts).items():
                self.metrics.alerts.labels(severity).inc(count)
            log.info(
                "alerts produced",
                extra={
                    "article_id": outcome.article_id,
                    "alert_ids": [a.alert_id for a in outcome.alerts],
                },
            )
        self.metrics.match_seconds.observe(time.perf_counter() - started)
        return delivery

    def _dead_letter(self, message: Any, reason: str) -> Record:
        """The record that sends `message` to the dead-letter topic (counted and logged)."""
        where = (message.topic, message.partition, message.offset)
        rejected = rejected_record((*where, message.key, message.value), reason, _now())
        self.metrics.articles.labels("dead_letter").inc()
        log.warning(
            "article record sent to the dead-letter topic",
            extra={"partition": message.partition, "offset": message.offset, "reason": reason},
        )
        return (self.topics.articles_dlq.name, dead_letter_key(message.key), encode(rejected))

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
        app.agent(articles, name="match-articles")(self._match_stream)
        app.task(self._start_views)
        worker = self

        @app.on_before_shutdown.connect
        async def stop_producer(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            # By now faust has waited for every consumed article to be acknowledged, that is
            # for its records to be stored.
            await worker._stop_producer()
            await worker._stop_lag()

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
