"""Requests carrying several alerts, as the notifier settles them (services/notifier/service.py).

HTTP and Kafka are stand-ins here; tests/integration/test_notifier.py holds batches to the
same promises against a real broker and a real receiver.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.delivery import DeliveryTask
from services.common.settings import NotifierSettings
from services.common.topics import build_topics, record_key
from services.notifier import service
from services.notifier.http import Response
from services.notifier.service import Notifier
from services.notifier.signing import batch_id, message
from tests.unit.notifier.builders import StoredAtOnce, make_alert, make_subscription

TOPICS = build_topics("newsalert.", 6, 1)


def _tasks(count: int) -> list[DeliveryTask]:
    return [
        DeliveryTask(
            alert=make_alert(article_id=f"art-{n}"),
            subscription_id="desk",
            next_attempt=1,
            not_before=datetime.now(UTC),
        )
        for n in range(count)
    ]


def _notifier(alerts_per_request: int) -> Notifier:
    """A notifier (not started) knowing one subscription, "desk", taking that many alerts."""
    notifier = Notifier(NotifierSettings())
    assert notifier.topics.deliveries == TOPICS.deliveries
    subscription = make_subscription(sub_id="desk").model_copy(
        update={"alerts_per_request": alerts_per_request}
    )
    notifier._on_subscription(record_key(subscription.tenant, subscription.id), subscription)
    return notifier


def _answering(notifier: Notifier, *statuses: int) -> list[dict[str, Any]]:
    """The requests the notifier will post, answered `statuses` in turn (then the last)."""
    posted: list[dict[str, Any]] = []

    async def post(url: str, body: bytes, headers: dict[str, str]) -> Response:
        posted.append({"body": json.loads(body), "id": headers["webhook-id"]})
        status = statuses[min(len(posted), len(statuses)) - 1]
        return Response(status=status, error=None, retry_after=None, seconds=0.001)

    notifier._client.post = post  # type: ignore[method-assign]
    return posted


async def _settled(
    alerts_per_request: int, tasks: list[DeliveryTask], *statuses: int
) -> tuple[list[dict[str, Any]], StoredAtOnce, Notifier]:
    """What `_settle` posts for `tasks` to a subscription taking that many alerts a request,
    answered `statuses` (204 by default), what it stores, and the notifier."""
    notifier = _notifier(alerts_per_request)
    stored = notifier._out = StoredAtOnce()  # type: ignore[assignment]
    posted = _answering(notifier, *(statuses or (204,)))
    await notifier._settle(tasks)
    return posted, stored, notifier


async def test_one_request_carries_the_batch_and_each_alert_is_settled_and_audited() -> None:
    tasks = _tasks(3)

    [request], stored, notifier = await _settled(10, tasks)

    assert request["body"]["type"] == "alert.batch"
    assert request["id"] == batch_id(t.alert.alert_id for t in tasks)
    assert stored.topics() == [TOPICS.deliveries.name] * len(tasks)
    assert notifier.metrics.deliveries.labels("delivered")._value.get() == len(tasks)


async def test_a_batch_formed_before_the_subscription_went_back_to_one_alert_goes_as_a_batch() -> (
    None
):
    [request], _, _ = await _settled(1, _tasks(2))

    assert request["body"]["type"] == "alert.batch"


async def test_a_single_delivery_to_a_one_alert_subscription_is_an_alert_created() -> None:
    tasks = _tasks(1)

    [request], _, _ = await _settled(1, tasks)

    assert request["body"]["type"] == "alert.created"
    assert request["id"] == tasks[0].alert.alert_id


async def test_a_failed_batch_is_posted_once_and_every_alerts_outcome_stored_in_one_write() -> None:
    posted, stored, _ = await _settled(10, _tasks(3), 503)

    assert len(posted) == 1
    assert stored.sends == 1, "one write: nothing is stored half-way, then the batch resent"
    assert sorted(stored.topics()) == sorted(
        [TOPICS.deliveries.name] * 3 + [TOPICS.retries[0].name] * 3
    )


async def test_a_batch_too_big_for_one_body_goes_in_halves(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = _tasks(5)
    one = len(message([tasks[0].alert], batched=True)[1])
    monkeypatch.setattr(service, "MAX_BATCH_BODY_BYTES", 2 * one + 200)

    posted, stored, _ = await _settled(10, tasks)

    carried = [[a["article"]["article_id"] for a in p["body"]["data"]["alerts"]] for p in posted]
    assert carried == [["art-0", "art-1"], ["art-2"], ["art-3", "art-4"]]
    assert [p["id"] for p in posted] == [batch_id(_ids(tasks, ids)) for ids in carried]
    assert stored.sends == 1, "both halves' outcomes in one write"
    assert stored.topics() == [TOPICS.deliveries.name] * len(tasks)


def _ids(tasks: list[DeliveryTask], article_ids: list[str]) -> list[str]:
    return [t.alert.alert_id for t in tasks if t.alert.article.article_id in article_ids]


async def test_once_the_first_half_is_answered_410_the_second_is_not_posted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tasks = _tasks(4)
    one = len(message([tasks[0].alert], batched=True)[1])
    monkeypatch.setattr(service, "MAX_BATCH_BODY_BYTES", 2 * one + 200)

    posted, stored, notifier = await _settled(10, tasks, 410)

    assert len(posted) == 1
    assert stored.topics().count(TOPICS.subscriptions.name) == 1, "disabled once"
    assert stored.topics().count(TOPICS.deliveries_dlq.name) == 2, "the second half"
    subscription = notifier.subscriptions.get("acme", "desk")
    assert subscription is not None
    assert not subscription.enabled


async def test_offsets_wait_until_kafka_has_stored_what_the_request_came_to() -> None:
    notifier = _notifier(10)
    stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    notifier._out = _StoredWhenTold(stored)  # type: ignore[assignment]
    _answering(notifier, 204)
    source = service._Source(consumer=None)
    pending = [
        service._Pending(task, source, "p0", offset) for offset, task in enumerate(_tasks(3))
    ]
    for item in pending:
        source.tracker.start("p0", item.offset)
        await notifier._window.acquire()

    running = asyncio.create_task(notifier._run(pending))
    await asyncio.sleep(0.01)
    assert not running.done()
    assert source.tracker.committable() == {"p0": 0}, "delivered, but not yet stored"

    stored.set_result(None)
    await running
    assert source.tracker.committable() == {"p0": 3}


class _StoredWhenTold:
    """A batching producer whose every send is stored when the test says so."""

    def __init__(self, stored: asyncio.Future[None]) -> None:
        self._stored = stored

    def send(self, records: list[Any]) -> asyncio.Future[None]:
        return self._stored


async def test_behind_a_backlog_counts_alerts_and_lets_one_batch_alone_wait() -> None:
    notifier = Notifier(NotifierSettings(webhook_backlog=200))
    for sub_id in ("desk", "other"):  # another endpoint to make room for
        sub = make_subscription(sub_id=sub_id)
        notifier._on_subscription(record_key(sub.tenant, sub.id), sub)
    lane = notifier._lane(make_subscription(sub_id="desk"))
    batch = _tasks(20)

    assert not notifier._behind_a_backlog(_tasks(300), lane), "alone, even a big batch waits"
    lane.waiting = 180
    assert not notifier._behind_a_backlog(batch, lane)
    lane.waiting = 181
    assert notifier._behind_a_backlog(batch, lane)
