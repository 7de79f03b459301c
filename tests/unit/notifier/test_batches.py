"""Requests carrying several alerts, as the notifier settles them (services/notifier/service.py).

HTTP and Kafka are stand-ins here; tests/integration/test_notifier.py holds batches to the
same promises against a real broker and a real receiver.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from schemas.delivery import DeliveryTask
from services.common.batching_producer import Record
from services.common.settings import NotifierSettings
from services.common.topics import record_key
from services.notifier.http import Response
from services.notifier.service import Notifier
from services.notifier.signing import batch_id
from tests.unit.notifier.builders import make_alert, make_subscription


class _Audit:
    """Takes the audit records an attempt writes."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, records: list[Record]) -> None:
        self.sent.extend(topic for topic, _, _ in records)


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


async def _posted(alerts_per_request: int, tasks: list[DeliveryTask]) -> list[dict[str, Any]]:
    """The requests `_settle` posts for `tasks` to a subscription taking that many alerts."""
    notifier = Notifier(NotifierSettings())
    subscription = make_subscription(sub_id="desk").model_copy(
        update={"alerts_per_request": alerts_per_request}
    )
    notifier._on_subscription(record_key(subscription.tenant, subscription.id), subscription)
    audit = notifier._audit = _Audit()  # type: ignore[assignment]
    posted: list[dict[str, Any]] = []

    async def post(url: str, body: bytes, headers: dict[str, str]) -> Response:
        posted.append({"body": json.loads(body), "id": headers["webhook-id"]})
        return Response(status=204, error=None, retry_after=None, seconds=0.001)

    notifier._client.post = post  # type: ignore[method-assign]
    await notifier._settle(tasks)
    assert notifier.metrics.deliveries.labels("delivered")._value.get() == len(tasks)
    assert audit.sent == [notifier.topics.deliveries.name] * len(tasks)
    return posted


async def test_one_request_carries_the_batch_and_each_alert_is_settled_and_audited() -> None:
    tasks = _tasks(3)

    [request] = await _posted(10, tasks)

    assert request["body"]["type"] == "alert.batch"
    assert request["id"] == batch_id(t.alert.alert_id for t in tasks)


async def test_a_batch_formed_before_the_subscription_went_back_to_one_alert_goes_as_a_batch() -> (
    None
):
    [request] = await _posted(1, _tasks(2))

    assert request["body"]["type"] == "alert.batch"


async def test_a_single_delivery_to_a_one_alert_subscription_is_an_alert_created() -> None:
    tasks = _tasks(1)

    [request] = await _posted(1, tasks)

    assert request["body"]["type"] == "alert.created"
    assert request["id"] == tasks[0].alert.alert_id
