"""Requests carrying several alerts, as the notifier settles them (services/notifier/service.py).

HTTP and Kafka are stand-ins here; tests/integration/test_notifier.py holds batches to the
same promises against a real broker and a real receiver.
"""

from __future__ import annotations

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


async def _settled(
    alerts_per_request: int, tasks: list[DeliveryTask], status: int = 204
) -> tuple[list[dict[str, Any]], StoredAtOnce]:
    """What `_settle` posts for `tasks` to a subscription taking that many alerts a request,
    each answered `status`, and what it stores."""
    notifier = Notifier(NotifierSettings())
    assert notifier.topics.deliveries == TOPICS.deliveries
    subscription = make_subscription(sub_id="desk").model_copy(
        update={"alerts_per_request": alerts_per_request}
    )
    notifier._on_subscription(record_key(subscription.tenant, subscription.id), subscription)
    stored = notifier._out = StoredAtOnce()  # type: ignore[assignment]
    posted: list[dict[str, Any]] = []

    async def post(url: str, body: bytes, headers: dict[str, str]) -> Response:
        posted.append({"body": json.loads(body), "id": headers["webhook-id"]})
        return Response(status=status, error=None, retry_after=None, seconds=0.001)

    notifier._client.post = post  # type: ignore[method-assign]
    await notifier._settle(tasks)
    return posted, stored


async def test_one_request_carries_the_batch_and_each_alert_is_settled_and_audited() -> None:
    tasks = _tasks(3)

    [request], stored = await _settled(10, tasks)

    assert request["body"]["type"] == "alert.batch"
    assert request["id"] == batch_id(t.alert.alert_id for t in tasks)
    assert stored.topics() == [TOPICS.deliveries.name] * len(tasks)


async def test_a_batch_formed_before_the_subscription_went_back_to_one_alert_goes_as_a_batch() -> (
    None
):
    [request], _ = await _settled(1, _tasks(2))

    assert request["body"]["type"] == "alert.batch"


async def test_a_single_delivery_to_a_one_alert_subscription_is_an_alert_created() -> None:
    tasks = _tasks(1)

    [request], _ = await _settled(1, tasks)

    assert request["body"]["type"] == "alert.created"
    assert request["id"] == tasks[0].alert.alert_id


async def test_a_failed_batch_is_posted_once_and_every_alerts_outcome_stored_in_one_write() -> None:
    # Not started, the notifier has no retry queue: a 503 dead-letters each alert.
    posted, stored = await _settled(10, _tasks(3), status=503)

    assert len(posted) == 1
    assert stored.sends == 1, "one write: nothing is stored half-way, then the batch resent"
    assert sorted(stored.topics()) == sorted(
        [TOPICS.deliveries.name] * 3 + [TOPICS.deliveries_dlq.name] * 3
    )


async def test_a_batch_too_big_for_one_body_goes_in_halves(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = _tasks(5)
    one = len(message([tasks[0].alert], batched=True)[1])
    monkeypatch.setattr(service, "MAX_BATCH_BODY_BYTES", 2 * one + 200)

    posted, _ = await _settled(10, tasks)

    carried = [[a["article"]["article_id"] for a in p["body"]["data"]["alerts"]] for p in posted]
    assert carried == [["art-0", "art-1"], ["art-2"], ["art-3", "art-4"]]
