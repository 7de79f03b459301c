"""The notifier: alerts in, signed webhooks out, with retries and dead letters in Kafka.

An adapter around the pure core (`routing`, `signing`, `policy`, `health`,
`services.common.offsets`). Each delivery (one alert to one subscription) is settled in
exactly one of four ways before its record's offset is committed: the endpoint answered
2xx; it answered 410 and the subscription was disabled; a later attempt was queued on a
retry topic; or the alert went to the dead-letter topic with every attempt's outcome. A
crash before the commit means the delivery is attempted again with the same `webhook-id`.

A subscription may take several alerts per request (`alerts_per_request`): the deliveries
to it that one poll reads go out together, as one signed `alert.batch` message, and nothing
waits for a batch to fill. Each alert is still settled on its own: a failed batch's alerts
are queued for retry (or dead-lettered) one by one, and sent again with what is due with
them.

Retry topics are delay queues: one per step of the schedule, each holding tasks whose
`not_before` grows with their offset (up to the jitter), so a consumer waits for the head of
its queue and never for anything behind it. Pending retries live there, not in memory, so a
restart loses none of them.

A slow endpoint cannot hold the others up: each subscription has its own lane with a few
requests in flight; deliveries that would queue behind a long backlog go to the first retry
topic instead, and the consumers keep reading. With one enabled subscription there is no
other to hold up, and its deliveries wait in its lane: a deferral costs a round trip through
Kafka, and a busy endpoint's deferred deliveries came back to a lane still busy, again and
again (tests/bench/notifier.py, one subscription: 360-390 webhooks/s deferring, 1,050-1,460
waiting). A delivery that has waited `webhook_max_wait_s` for its endpoint is deferred all
the same, so that a hung endpoint cannot keep the consumers from polling.

Every attempt also updates the endpoint's health (published, coalesced, to the compacted
endpoint-status topic that the API shows); an endpoint whose attempts all failed for
`disable_after_h` is disabled. Replays asked for through the API arrive on the replays
topic and are delivered as first attempts: same `webhook-id`, fresh timestamp and signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.abc import AbstractResolver
from pydantic import BaseModel, ValidationError

from schemas.alert import Alert
from schemas.delivery import DeadLetter, DeliveryAttempt, DeliveryTask, OutcomeKind
from schemas.health import EndpointStatus
from schemas.replay import ReplayRequest
from schemas.subscription import Subscription
from services.common.batching_producer import BatchingProducer, Record
from services.common.compacted import CompactedView
from services.common.dead_letters import DeadLetterView
from services.common.follower import seek_to_time
from services.common.kafka import (
    encode,
    ensure_topics,
    make_consumer,
    make_producer,
    topic_partitions,
)
from services.common.lag import LagProbe, report_lag
from services.common.metrics import exposition, new_registry
from services.common.offsets import OffsetTracker
from services.common.settings import NotifierSettings
from services.common.ssrf import UrlPolicy
from services.common.topics import build_topics, record_key
from services.notifier.health import EndpointHealth
from services.notifier.http import WebhookClient
from services.notifier.metrics import NotifierMetrics
from services.notifier.policy import Decision, RetrySchedule, parse_retry_after
from services.notifier.routing import SubscriptionIndex, into_requests, wants
from services.notifier.signing import NoActiveSecretError, message, webhook_headers

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 2000  # alerts in requests started and not settled, over every queue
# A batch whose body would be larger goes as two requests: endpoints refuse big bodies (413).
MAX_BATCH_BODY_BYTES = 1024 * 1024
# A delivery that could not be settled is settled again after these pauses.
SETTLE_RETRY_FIRST_S = 0.5
SETTLE_RETRY_MAX_S = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


def queue_for(delay_s: float, delays_s: tuple[float, ...], jitter: float) -> int:
    """The retry topic (index into the schedule) whose delay fits a wait of `delay_s`.

    A task joins the first queue whose step, less the jitter, is at least its delay; a
    `Retry-After` longer than the step therefore lands in a later queue and never holds up
    the tasks of its own.
    """
    for index, step in enumerate(delays_s):
        if step * (1 + jitter) >= delay_s:
            return index
    return len(delays_s) - 1


M = TypeVar("M", bound=BaseModel)


def _decoded(schema: type[M], record: Any, source: _Source, partition: Hashable) -> M | None:
    """The record as `schema`; None (logged, and done with: nothing to retry) if it is not."""
    try:
        return schema.model_validate_json(record.value or b"")
    except ValidationError as exc:
        log.error(
            f"a {schema.__name__} record does not decode; skipped",
            extra={"topic": record.topic, "offset": record.offset, "error": str(exc)[:500]},
        )
        source.tracker.start(partition, record.offset, refs=0)
        return None


@dataclass
class _Lane:
    """One subscription's share of the notifier: a few requests at once, a bounded queue."""

    slots: asyncio.Semaphore
    waiting: int = 0


@dataclass
class _Source:
    """A consumer and what it has in flight."""

    consumer: Any
    tracker: OffsetTracker = field(default_factory=OffsetTracker)


@dataclass
class _Outcome:
    """What settling one request writes to Kafka, and what follows here once it is stored."""

    records: list[Record] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    disabled: Subscription | None = None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A delivery and the record it came from, whose offset it holds back until settled."""

    task: DeliveryTask
    source: _Source
    partition: Hashable
    offset: int


class Notifier:
    """Consumes alerts and retry queues, delivers, settles, commits."""

    def __init__(
        self,
        settings: NotifierSettings,
        *,
        resolver: AbstractResolver | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.settings = settings
        self.topics = build_topics(
            settings.topic_prefix, settings.partitions, len(settings.retry_schedule_s)
        )
        self.registry = new_registry()
        self.metrics = NotifierMetrics.register(self.registry)
        self.schedule = RetrySchedule(settings.retry_schedule_s, settings.retry_jitter)
        self.subscriptions = SubscriptionIndex()
        self._view = CompactedView(
            settings.bootstrap_servers, self.topics.subscriptions.name, Subscription
        )
        self._view.subscribe(self._on_subscription)
        policy = UrlPolicy.from_strings(settings.webhook_allow_http, settings.webhook_allow)
        self._client = WebhookClient(
            policy, settings.webhook_timeout_s, settings.webhook_max_response_bytes, resolver
        )
        self._statuses = CompactedView(
            settings.bootstrap_servers, self.topics.endpoint_status.name, EndpointStatus
        )
        self.dead_letters = DeadLetterView(
            settings.bootstrap_servers, self.topics.deliveries_dlq.name
        )
        self._health: dict[tuple[str, str], EndpointHealth] = {}
        self._unpublished: set[tuple[str, str]] = set()
        self._disable_after = timedelta(hours=settings.disable_after_h)
        self._clock = clock
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._endpoints = 0  # enabled subscriptions
        self._window = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._window_turn = asyncio.Lock()
        self._producer: Any = None
        # What settling deliveries writes, in batches; on the producer, once started.
        self._out: BatchingProducer | None = None
        self._alerts: _Source | None = None
        self._queues: list[_Source] = []
        self._replays: _Source | None = None
        self._lag = LagProbe(settings.bootstrap_servers, settings.notifier_group)
        self._tasks: list[asyncio.Task[None]] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._ready = False
        self.port: int | None = None

    # -- subscriptions -------------------------------------------------------------------

    def _on_subscription(self, key: str, subscription: Subscription | None) -> None:
        tenant, _, subscription_id = key.partition("/")
        if subscription is None:
            self.subscriptions.remove(tenant, subscription_id)
        else:
            self.subscriptions.upsert(subscription)
        enabled = sum(s.enabled for s in self.subscriptions)
        self._endpoints = enabled
        self.metrics.subscriptions_disabled.set(len(self.subscriptions) - enabled)

    def _disable(self, subscription: Subscription, reason: str, out: _Outcome) -> None:
        """Have `out` disable the subscription: its record, and the view once it is stored.

        `subscription` is the copy the request went out with; the record written is the
        latest copy, so that a tenant's edit made while the request was out survives. If the
        tenant disabled or deleted it meanwhile, nothing is written (`_attempt` judges no
        endpoint whose URL was replaced). (The topic has no compare-and-set: an edit landing
        within the write itself can still be lost.)
        """
        latest = self.subscriptions.get(subscription.tenant, subscription.id)
        if latest is None or not latest.enabled:
            log.info(
                "subscription changed during the request; not disabled",
                extra={"tenant": subscription.tenant, "subscription": subscription.id},
            )
            return
        disabled = latest.model_copy(
            update={"enabled": False, "disabled_reason": reason, "updated_at": self._clock()}
        )
        key = record_key(subscription.tenant, subscription.id)
        out.records.append((self.topics.subscriptions.name, key.encode(), encode(disabled)))
        out.disabled = disabled

    # -- endpoint health -----------------------------------------------------------------

    def health(self, tenant: str, subscription_id: str) -> EndpointHealth:
        """The running delivery record of one subscription's endpoint."""
        key = (tenant, subscription_id)
        found = self._health.get(key)
        if found is None:
            stored = self._statuses.get(record_key(tenant, subscription_id))
            found = (
                EndpointHealth.from_status(stored)
                if stored is not None
                else EndpointHealth(tenant, subscription_id)
            )
            self._health[key] = found
        return found

    async def _publish_health(self) -> None:
        # Coalesced: one status record per subscription per flush, however many attempts.
        pending, self._unpublished = self._unpublished, set()
        try:
            for tenant, subscription_id in pending:
                status = self.health(tenant, subscription_id).status()
                await self._send(
                    self.topics.endpoint_status.name, record_key(tenant, subscription_id), status
                )
        except BaseException:
            self._unpublished |= pending  # the next flush publishes them (again)
            raise

    # -- delivering ----------------------------------------------------------------------

    def _lane(self, subscription: Subscription) -> _Lane:
        key = (subscription.tenant, subscription.id)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(asyncio.Semaphore(self.settings.webhook_concurrency))
        return lane

    async def _send(self, topic: str, key: str, value: Any) -> None:
        await self._producer.send_and_wait(topic, key=key.encode(), value=encode(value))

    async def _settle(self, tasks: list[DeliveryTask]) -> None:
        """Attempt one request carrying `tasks` (or defer them), and store what comes of it.

        Every task of one request is for one subscription; one task unless the subscription
        takes several alerts per request. Whatever the outcome writes (audit records, retry
        tasks, dead letters, a disabled subscription) is stored in one go before this returns,
        and Kafka is asked again until it is: nothing here fails half-way, so a request is
        never sent twice for a write that failed after it.
        """
        out = _Outcome()
        tenant, subscription_id = tasks[0].alert.tenant, tasks[0].subscription_id
        subscription = self.subscriptions.get(tenant, subscription_id)
        if subscription is None:
            # Deleted since the alert was routed: it wants nothing any more.
            self.metrics.deliveries.labels("dropped").inc(len(tasks))
            return
        if not subscription.enabled:
            reason = f"subscription disabled: {subscription.disabled_reason}"
            for task in tasks:
                self.health(tenant, subscription.id).record_dead_letter()
                self._dead_letter(task, task.attempts, reason, out)
            self._unpublished.add((tenant, subscription.id))
        elif self._behind_a_backlog(tasks, self._lane(subscription)):
            for task in tasks:
                self._defer(task, out)
        else:
            await self._attempt(tasks, subscription, self._lane(subscription), out)
        await self._store(out)

    def _behind_a_backlog(self, tasks: list[DeliveryTask], lane: _Lane) -> bool:
        # In alerts, as the window counts them: a lane holds the backlog, or one batch alone.
        return (
            all(task.next_attempt == 1 for task in tasks)
            and lane.waiting > 0
            and lane.waiting + len(tasks) > self.settings.webhook_backlog
            and self._endpoints > 1  # else there is no other endpoint to make room for
        )

    async def _store(self, out: _Outcome) -> None:
        """Write what settling wrote down, wait until Kafka has it, then act on it here."""
        assert self._out is not None, "deliveries are settled only once started"
        if out.records:
            await self._out.send(out.records)
        for letter in out.letters:
            self.dead_letters.add(letter)
            self.metrics.dead_letters.inc()
            self.metrics.deliveries.labels("dead_letter").inc()
            log.warning(
                "delivery dead-lettered",
                extra={"alert_id": letter.alert.alert_id, "subscription": letter.subscription_id},
            )
        if out.disabled is not None:
            disabled = out.disabled
            self._view.apply(record_key(disabled.tenant, disabled.id), disabled)
            log.warning(
                "subscription disabled",
                extra={
                    "tenant": disabled.tenant,
                    "subscription": disabled.id,
                    "why": disabled.disabled_reason,
                },
            )

    def _defer(self, task: DeliveryTask, out: _Outcome) -> None:
        """Queue the delivery on the first retry queue unattempted: it keeps its attempt number."""
        self._queue(task, task.attempts, self._first_step_s(), out)
        self.metrics.deliveries.labels("deferred").inc()

    def _first_step_s(self) -> float:
        return self.schedule.delays_s[0] if self.schedule.delays_s else 0.0

    def _moved(self, subscription: Subscription) -> bool:
        """Whether the tenant has pointed `subscription` (a copy a request went out with) at
        another URL since. (Disabled meanwhile too, its alerts go on to be dead-lettered.)"""
        latest = self.subscriptions.get(subscription.tenant, subscription.id)
        return latest is not None and latest.url != subscription.url

    async def _slot(self, lane: _Lane) -> bool:
        """Take one of the lane's request slots; False after `webhook_max_wait_s` without one.

        The window of deliveries in flight is shared, so the consumers wait for room behind a
        delivery that waits here: bounded, they keep polling (Kafka drops a consumer that
        has not polled for 5 minutes) whatever an endpoint does. Without a retry queue to
        defer to, a delivery waits as long as it takes.
        """
        if not self.schedule.delays_s:
            await lane.slots.acquire()
            return True
        try:
            async with asyncio.timeout(self.settings.webhook_max_wait_s):
                await lane.slots.acquire()
        except TimeoutError:
            return False
        return True

    async def _attempt(
        self, tasks: list[DeliveryTask], subscription: Subscription, lane: _Lane, out: _Outcome
    ) -> None:
        started = self._clock()
        # A batch formed before the subscription went back to one alert a request is still
        # one. The event time in the body: the same bytes on every retry of the same alerts.
        batched = subscription.alerts_per_request > 1 or len(tasks) > 1
        msg_id, body = message([task.alert for task in tasks], batched=batched)
        if len(body) > MAX_BATCH_BODY_BYTES and len(tasks) > 1:
            # Alerts with long evidence: halves, rather than a body endpoints refuse (413).
            half = len(tasks) // 2
            await self._attempt(tasks[:half], subscription, lane, out)
            if out.disabled is not None:  # the first half was answered 410, or the last straw
                reason = f"subscription disabled: {out.disabled.disabled_reason}"
                for task in tasks[half:]:
                    self._dead_letter(task, task.attempts, reason, out)
                return
            if self._moved(subscription):  # not to the old URL: on to the new one, unattempted
                for task in tasks[half:]:
                    self._defer(task, out)
                return
            await self._attempt(tasks[half:], subscription, lane, out)
            return
        try:
            headers = webhook_headers(subscription.secrets, msg_id, body, started)
        except NoActiveSecretError as exc:
            for task in tasks:
                self._dead_letter(task, task.attempts, str(exc), out)
            return
        # The lane's slot is held for the HTTP request only: storing its outcome in Kafka
        # must not keep the next request to this endpoint waiting.
        lane.waiting += len(tasks)
        try:
            served = await self._slot(lane)
        finally:
            lane.waiting -= len(tasks)
        if not served:
            for task in tasks:
                self._defer(task, out)
            return
        try:
            response = await self._client.post(subscription.url, body, headers)
        finally:
            lane.slots.release()
        finished = self._clock()
        self.metrics.delivery_seconds.observe(response.seconds)
        retry_after = parse_retry_after(response.retry_after, finished)
        health = self.health(subscription.tenant, subscription.id)
        # However this process learnt of the change (live, or from the topic at a restart).
        health.since(subscription.updated_at)
        self._unpublished.add((subscription.tenant, subscription.id))
        audit_key = record_key(subscription.tenant, subscription.id).encode()
        # A failure of a URL the tenant has replaced meanwhile is that URL's, not the
        # subscription's: no reason to give up on an alert (410, the last attempt) or to
        # count against the new URL's health. The alerts go on to the new URL, as retries.
        moved = self._moved(subscription)
        outcome = OutcomeKind.DELIVERED
        for task in tasks:
            # Per alert: the same answer is a retry for one and the last straw for another.
            decision = self.schedule.decide(
                task.next_attempt, response.status, response.error, retry_after
            )
            attempt = DeliveryAttempt(
                alert_id=task.alert.alert_id,
                tenant=task.alert.tenant,
                subscription_id=subscription.id,
                attempt=task.next_attempt,
                outcome=decision.outcome,
                status_code=response.status,
                error=response.error,
                duration_ms=response.seconds * 1000,
                attempted_at=started,
            )
            self.metrics.attempts.labels(decision.outcome.value).inc()
            log.info(
                "webhook attempt",
                extra={
                    "alert_id": task.alert.alert_id,
                    "article_id": task.alert.article.article_id,
                    "tenant": task.alert.tenant,
                    "subscription": subscription.id,
                    "webhook_id": msg_id,
                    "attempt": task.next_attempt,
                    "outcome": decision.outcome.value,
                    "status": response.status,
                    "error": response.error,
                },
            )
            out.records.append((self.topics.deliveries.name, audit_key, encode(attempt)))
            outcome = decision.outcome
            if moved and outcome is not OutcomeKind.DELIVERED:
                self.metrics.deliveries.labels("retry").inc()
                self._queue(task, [*task.attempts, attempt], self._first_step_s(), out)
                continue
            if not moved:
                health.record(outcome, finished, response.error, response.status)
            self._conclude(task, decision, [*task.attempts, attempt], finished, out)
        if moved:  # what follows judges the endpoint: the old URL's answer says nothing of it
            return
        # Every alert of the request had the same answer: delivered for all, or for none.
        if outcome is OutcomeKind.GONE:
            self._disable(subscription, "the endpoint answered 410 Gone", out)
        elif outcome is not OutcomeKind.DELIVERED and health.should_disable(self._disable_after):
            self._disable(subscription, health.disable_reason(), out)

    def _conclude(
        self,
        task: DeliveryTask,
        decision: Decision,
        attempts: list[DeliveryAttempt],
        finished: datetime,
        out: _Outcome,
    ) -> None:
        """Settle one alert of an attempted request: delivered, queued again, or dead."""
        outcome = decision.outcome
        if outcome is OutcomeKind.DELIVERED:
            self.metrics.deliveries.labels("delivered").inc()
            if task.next_attempt == 1:
                self.metrics.end_to_end_seconds.observe(
                    (finished - task.alert.article.received_at).total_seconds()
                )
        elif outcome is OutcomeKind.GONE:
            self.metrics.deliveries.labels("gone").inc()
        elif outcome is OutcomeKind.RETRY and decision.delay_s is not None:
            self.metrics.deliveries.labels("retry").inc()
            self._queue(task, attempts, decision.delay_s, out)
        else:
            last = attempts[-1].error or f"HTTP {attempts[-1].status_code}"
            reason = f"no success after {len(attempts)} attempts; last: {last}"
            self._dead_letter(task, attempts, reason, out)

    def _queue(
        self, task: DeliveryTask, attempts: list[DeliveryAttempt], delay_s: float, out: _Outcome
    ) -> None:
        if not self.topics.retries:  # an empty schedule: one attempt only
            self._dead_letter(task, attempts, "no retry queue configured", out)
            return
        done = len(attempts) - len(task.attempts)  # 1 after an attempt, 0 when deferred
        queued = DeliveryTask(
            alert=task.alert,
            subscription_id=task.subscription_id,
            next_attempt=task.next_attempt + done,
            not_before=self._clock() + timedelta(seconds=delay_s),
            attempts=attempts,
        )
        index = queue_for(delay_s, self.schedule.delays_s, self.schedule.jitter)
        key = record_key(task.alert.tenant, task.subscription_id).encode()
        out.records.append((self.topics.retries[index].name, key, encode(queued)))

    def _dead_letter(
        self, task: DeliveryTask, attempts: list[DeliveryAttempt], reason: str, out: _Outcome
    ) -> None:
        letter = DeadLetter(
            alert=task.alert,
            subscription_id=task.subscription_id,
            reason=reason,
            attempts=attempts,
            dead_at=self._clock(),
        )
        key = record_key(task.alert.tenant, task.subscription_id).encode()
        out.records.append((self.topics.deliveries_dlq.name, key, encode(letter)))
        out.letters.append(letter)

    async def _run(self, pending: list[_Pending]) -> None:
        try:
            await self._settle_until_done([p.task for p in pending])
        finally:
            for _ in pending:
                self._window.release()
        for p in pending:
            p.source.tracker.finish(p.partition, p.offset)

    async def _settle_until_done(self, tasks: list[DeliveryTask]) -> None:
        # Storing an outcome waits for Kafka however long it takes; this is for the
        # unforeseen, which must not leave the offsets held back until a restart (and the
        # alerts reaching no one) either. Settling again may repeat a webhook that did go
        # out; receivers deduplicate on its id.
        pause = SETTLE_RETRY_FIRST_S
        while True:
            try:
                await self._settle(tasks)
                return
            except Exception:
                self.metrics.settle_retries.inc()
                log.exception(
                    "delivery could not be settled; trying again",
                    extra={"alert_ids": [task.alert.alert_id for task in tasks], "in_s": pause},
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, SETTLE_RETRY_MAX_S)

    async def _spawn(self, pending: Iterable[_Pending]) -> None:
        """Start the requests that carry `pending`, grouped as their subscriptions take them."""
        for request in into_requests(self._request_keys(pending)):
            # The window counts alerts, whatever the requests carry; one consumer at a time
            # takes a request's share, or several could each hold part and wait for ever.
            async with self._window_turn:
                for _ in request:
                    await self._window.acquire()
            running = asyncio.create_task(self._run(request))
            self._deliveries.add(running)
            running.add_done_callback(self._deliveries.discard)

    def _request_keys(
        self, pending: Iterable[_Pending]
    ) -> Iterator[tuple[tuple[str, str], int, _Pending]]:
        for item in pending:
            key = (item.task.alert.tenant, item.task.subscription_id)
            subscription = self.subscriptions.get(*key)
            # One unknown here goes alone: `_settle` drops it.
            yield key, 1 if subscription is None else subscription.alerts_per_request, item

    # -- consuming -----------------------------------------------------------------------

    async def _consume_alerts(self, source: _Source) -> None:
        consumer = source.consumer
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            # A poll's deliveries are grouped into requests together: what a subscription
            # taking several alerts per request gets in one is what was read at once.
            await self._spawn(
                [
                    pending
                    for partition, records in batches.items()
                    for record in records
                    for pending in self._route(record, source, partition)
                ]
            )

    def _route(self, record: Any, source: _Source, partition: Hashable) -> list[_Pending]:
        alert = _decoded(Alert, record, source, partition)
        if alert is None:
            return []
        wanted = self.subscriptions.for_alert(alert)
        source.tracker.start(partition, record.offset, refs=len(wanted))
        now = self._clock()
        return [
            _Pending(
                DeliveryTask(
                    alert=alert, subscription_id=subscription.id, next_attempt=1, not_before=now
                ),
                source,
                partition,
                record.offset,
            )
            for subscription in wanted
        ]

    async def _consume_queue(self, source: _Source) -> None:
        consumer = source.consumer
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            wait: float | None = None
            due: list[_Pending] = []
            for partition, records in batches.items():
                for record in records:
                    task = _decoded(DeliveryTask, record, source, partition)
                    if task is None:
                        continue
                    due_in = (task.not_before - self._clock()).total_seconds()
                    if due_in > 0:
                        # The head of this partition is not due: read it again later.
                        consumer.seek(partition, record.offset)
                        wait = due_in if wait is None else min(wait, due_in)
                        break
                    source.tracker.start(partition, record.offset)
                    due.append(_Pending(task, source, partition, record.offset))
            await self._spawn(due)
            if wait is not None:
                # Sleeping a second at most keeps the consumer polling (and in its group).
                await asyncio.sleep(min(wait, 1.0))

    async def _consume_replays(self, source: _Source) -> None:
        consumer = source.consumer
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=10)
            for partition, records in batches.items():
                for record in records:
                    await self._replay(record, source, partition)

    async def _replay(self, record: Any, source: _Source, partition: Hashable) -> None:
        """Deliver again, as first attempts: same webhook-id, fresh timestamp and signature."""
        request = _decoded(ReplayRequest, record, source, partition)
        if request is None:
            return
        subscription = self.subscriptions.get(request.tenant, request.subscription_id)
        alerts: list[Alert] = []
        if subscription is None:
            log.warning("replay of an unknown subscription", extra={"replay": request.replay_id})
        elif request.alert_id is not None:
            letter = self.dead_letters.get(
                request.tenant, request.subscription_id, request.alert_id
            )
            if letter is not None:
                alerts.append(letter.alert)
        elif request.since is not None and request.until is not None:
            # `wants` also keeps other tenants' alerts out of a replay.
            wanted = subscription.model_copy(update={"enabled": True})
            alerts = [
                a
                for a in await self._alerts_between(request.since, request.until)
                if wants(wanted, a)
            ]
        source.tracker.start(partition, record.offset, refs=len(alerts))
        now = self._clock()
        log.info("replay", extra={"replay": request.replay_id, "alerts": len(alerts)})
        await self._spawn(
            _Pending(
                DeliveryTask(
                    alert=alert,
                    subscription_id=request.subscription_id,
                    next_attempt=1,
                    not_before=now,
                ),
                source,
                partition,
                record.offset,
            )
            for alert in alerts
        )

    async def _alerts_between(self, since: datetime, until: datetime) -> list[Alert]:
        from aiokafka import TopicPartition  # type: ignore[import-untyped,unused-ignore]

        s = self.settings
        topic = self.topics.alerts.name
        consumer = make_consumer(s.bootstrap_servers, group_id=None)
        await consumer.start()
        found: list[Alert] = []
        try:
            partitions = [
                TopicPartition(topic, n) for n in await topic_partitions(s.bootstrap_servers, topic)
            ]
            consumer.assign(partitions)
            await seek_to_time(consumer, partitions, since.timestamp())
            end: dict[Any, int] = await consumer.end_offsets(partitions)
            until_ms = until.timestamp() * 1000
            open_partitions = {tp for tp in partitions if await consumer.position(tp) < end[tp]}
            while open_partitions:
                batches = await consumer.getmany(*open_partitions, timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        if record.timestamp > until_ms or record.offset >= end[tp]:
                            open_partitions.discard(tp)
                            break
                        with contextlib.suppress(ValidationError):
                            found.append(Alert.model_validate_json(record.value or b""))
                    if tp in open_partitions and await consumer.position(tp) >= end[tp]:
                        open_partitions.discard(tp)
        finally:
            await consumer.stop()
        return found

    async def _commit_forever(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            try:
                await self._commit()
            except Exception:
                # The broker away: what was not committed is committed next time round.
                log.exception("offsets or endpoint statuses not written; trying again")

    async def _commit(self) -> None:
        await self._publish_health()
        sources = [s for s in (self._alerts, *self._queues, self._replays) if s is not None]
        # Settled deliveries have had what they wrote acknowledged (see `_store`); the flush
        # covers the endpoint statuses.
        ready = [(source, source.tracker.committable()) for source in sources]
        await self._producer.flush()
        queued = 0
        for source, offsets in ready:
            owned = source.consumer.assignment()
            offsets = {tp: o for tp, o in offsets.items() if tp in owned}
            if offsets:
                with contextlib.suppress(Exception):  # a rebalance: the new owner retries
                    await source.consumer.commit(offsets)
            if source in self._queues:
                for tp in owned:
                    high = source.consumer.highwater(tp)
                    if high is not None:
                        queued += max(0, high - (await source.consumer.position(tp)))
        self.metrics.retries_queued.set(queued)

    # -- life cycle ----------------------------------------------------------------------

    async def start(self, port: int | None = None) -> int:
        """Connect, load the subscriptions, start consuming; return the web port."""
        s = self.settings
        await ensure_topics(s.bootstrap_servers, self.topics.all(), s.replication_factor)
        self._producer = make_producer(s.bootstrap_servers)
        await self._producer.start()
        # One batch per request's outcome: audit records (one per alert attempted), retry
        # tasks, dead letters. aiokafka's send per record was a seventh of the notifier's time
        # with batched requests.
        self._out = BatchingProducer(
            self._producer, on_retry=lambda topic, error: self.metrics.settle_retries.inc()
        )
        topics = self.topics
        await self._out.prepare(
            [
                topics.deliveries.name,
                topics.deliveries_dlq.name,
                topics.subscriptions.name,
                *(retry.name for retry in topics.retries),
            ]
        )
        await self._view.start()
        await self._statuses.start()
        await self.dead_letters.start()
        await self._client.start()
        self._alerts = _Source(
            make_consumer(s.bootstrap_servers, self.topics.alerts.name, group_id=s.notifier_group)
        )
        self._queues = [
            _Source(
                make_consumer(
                    s.bootstrap_servers, spec.name, group_id=f"{s.notifier_group}.{spec.name}"
                )
            )
            for spec in self.topics.retries
        ]
        self._replays = _Source(
            make_consumer(
                s.bootstrap_servers,
                self.topics.replays.name,
                group_id=f"{s.notifier_group}.replays",
            )
        )
        for source in (self._alerts, *self._queues, self._replays):
            await source.consumer.start()
        await self._lag.start()
        lag = report_lag(
            self._lag, self._alerts.consumer.assignment, self.metrics.consumer_lag, s.lag_interval_s
        )
        self._tasks = [
            asyncio.create_task(lag, name="notifier:lag"),
            asyncio.create_task(self._consume_alerts(self._alerts), name="notifier:alerts"),
            *(
                asyncio.create_task(self._consume_queue(q), name=f"notifier:retry{n}")
                for n, q in enumerate(self._queues, 1)
            ),
            asyncio.create_task(self._consume_replays(self._replays), name="notifier:replays"),
            asyncio.create_task(self._commit_forever(), name="notifier:commit"),
        ]
        self.port = await self._serve(s.notifier_port if port is None else port)
        self._ready = True
        return self.port

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop reading, let deliveries in flight settle (up to `grace_s`), commit, close."""
        self._ready = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=grace_s)
        # Those still running (an endpoint or Kafka that did not answer in time) are left
        # for the next run: their offsets are not committed.
        late = set(self._deliveries)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        try:
            async with asyncio.timeout(grace_s):
                await self._commit()
        except Exception:
            # The broker away: the next owner of these offsets redoes what they cover.
            log.exception("stopped without committing the last offsets")
        for source in (self._alerts, *self._queues, self._replays):
            if source is not None:
                await source.consumer.stop()
        for view in (self._view, self._statuses, self.dead_letters):
            await view.stop()
        await self._lag.stop()
        await self._client.close()
        if self._out is not None:
            await self._out.close()
        if self._producer is not None:
            await self._producer.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, port: int) -> int:
        app = web.Application()

        async def healthz(request: web.Request) -> web.Response:
            return web.json_response({"status": "alive"})

        async def readyz(request: web.Request) -> web.Response:
            body = {"ready": self._ready, "subscriptions": len(self.subscriptions)}
            return web.json_response(body, status=200 if self._ready else 503)

        async def metrics(request: web.Request) -> web.Response:
            body, content_type = exposition(self.registry)
            return web.Response(body=body, headers={"Content-Type": content_type})

        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # Our own socket: with port 0 the OS picks one, and we can say which.
        sock = socket.create_server((self.settings.notifier_host, port))
        await web.SockSite(self._runner, sock).start()
        bound: int = sock.getsockname()[1]
        return bound
