"""A delivery behind a long backlog steps aside (to the first retry queue) only to make room
for another endpoint's deliveries; with no other endpoint enabled, it waits in its lane.

HTTP and Kafka are replaced here by recording steps; tests/integration/test_notifier.py
shows the same against a real broker and a real receiver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from schemas.delivery import DeliveryAttempt, DeliveryTask
from schemas.subscription import Subscription
from services.common.settings import NotifierSettings
from services.common.topics import record_key
from services.notifier.service import Notifier
from tests.unit.notifier.builders import StoredAtOnce, make_alert, make_subscription

BACKLOG = 3
BUSY = make_subscription(sub_id="busy")


async def _settle_behind_a_backlog(
    monkeypatch: pytest.MonkeyPatch,
    *others: Subscription,
    next_attempt: int = 1,
    then: Sequence[tuple[str, Subscription | None]] = (),
) -> list[str]:
    """What the notifier does with a delivery to BUSY while BACKLOG others wait for it, once
    the subscriptions topic brought BUSY, `others`, then the changes `then`."""
    notifier = Notifier(NotifierSettings(webhook_backlog=BACKLOG))
    for subscription in (BUSY, *others):
        notifier._on_subscription(record_key(subscription.tenant, subscription.id), subscription)
    for key, change in then:
        notifier._on_subscription(key, change)
    notifier._lane(BUSY).waiting = BACKLOG
    done: list[str] = []

    async def attempt(
        tasks: list[DeliveryTask], subscription: Subscription, lane: object, out: object
    ) -> None:
        done.append("waits its turn")

    def queue(
        task: DeliveryTask, attempts: list[DeliveryAttempt], delay_s: float, out: object
    ) -> None:
        done.append("steps aside")

    notifier._out = StoredAtOnce()  # type: ignore[assignment]
    monkeypatch.setattr(notifier, "_attempt", attempt)
    monkeypatch.setattr(notifier, "_queue", queue)
    task = DeliveryTask(
        alert=make_alert(tenant=BUSY.tenant),
        subscription_id=BUSY.id,
        next_attempt=next_attempt,
        not_before=datetime.now(UTC),
    )
    await notifier._settle([task])
    return done


async def test_behind_a_backlog_a_delivery_steps_aside_for_another_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = make_subscription(sub_id="other", tenant="globex")

    assert await _settle_behind_a_backlog(monkeypatch, other) == ["steps aside"]


async def test_with_no_other_endpoint_a_delivery_waits_in_its_lane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await _settle_behind_a_backlog(monkeypatch) == ["waits its turn"]


async def test_a_disabled_subscription_is_no_endpoint_to_make_room_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    disabled = make_subscription(sub_id="off", enabled=False)

    assert await _settle_behind_a_backlog(monkeypatch, disabled) == ["waits its turn"]


async def test_a_retry_is_attempted_behind_a_backlog_not_deferred(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = make_subscription(sub_id="other")

    assert await _settle_behind_a_backlog(monkeypatch, other, next_attempt=2) == ["waits its turn"]


async def test_once_the_other_endpoint_is_deleted_a_delivery_waits_in_its_lane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = make_subscription(sub_id="other")
    gone = (record_key(other.tenant, other.id), None)

    assert await _settle_behind_a_backlog(monkeypatch, other, then=[gone]) == ["waits its turn"]


async def test_once_the_other_endpoint_is_disabled_a_delivery_waits_in_its_lane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = make_subscription(sub_id="other")
    disabled = other.model_copy(update={"enabled": False, "disabled_reason": "410 Gone"})
    change = (record_key(other.tenant, other.id), disabled)

    assert await _settle_behind_a_backlog(monkeypatch, other, then=[change]) == ["waits its turn"]


async def test_once_a_disabled_endpoint_is_enabled_again_a_delivery_steps_aside_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    off = make_subscription(sub_id="off", enabled=False)
    enabled = (record_key(off.tenant, off.id), off.model_copy(update={"enabled": True}))

    assert await _settle_behind_a_backlog(monkeypatch, off, then=[enabled]) == ["steps aside"]


async def test_a_delivery_that_waited_too_long_for_its_endpoint_steps_aside_even_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notifier = Notifier(NotifierSettings(webhook_concurrency=1, webhook_max_wait_s=0.05))
    notifier._on_subscription(record_key(BUSY.tenant, BUSY.id), BUSY)
    lane = notifier._lane(BUSY)
    await lane.slots.acquire()  # its one request slot is taken, and stays taken
    deferred: list[int] = []

    def queue(
        task: DeliveryTask, attempts: list[DeliveryAttempt], delay_s: float, out: object
    ) -> None:
        deferred.append(task.next_attempt)

    async def post(*args: object) -> None:
        raise AssertionError("no request without a slot")

    monkeypatch.setattr(notifier, "_queue", queue)
    monkeypatch.setattr(notifier._client, "post", post)
    task = DeliveryTask(
        alert=make_alert(tenant=BUSY.tenant),
        subscription_id=BUSY.id,
        next_attempt=2,
        not_before=datetime.now(UTC),
    )

    notifier._out = StoredAtOnce()  # type: ignore[assignment]
    await asyncio.wait_for(notifier._settle([task]), timeout=5)

    assert deferred == [2]  # unattempted: it keeps its attempt number
    assert lane.waiting == 0
    assert notifier.metrics.deliveries.labels("deferred")._value.get() == 1
