"""A subscription the notifier disables is written from its latest copy, not the request's.

A request can be out for as long as the webhook timeout; the tenant may edit the subscription
meanwhile. The notifier's verdict (410 Gone, or failing for too long) is about the endpoint
the request went to: it must not undo the tenant's edit, nor disable an endpoint the
subscription no longer names. HTTP and Kafka are stand-ins here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from schemas.delivery import DeliveryAttempt, DeliveryTask, OutcomeKind
from schemas.subscription import Subscription
from services.common.settings import NotifierSettings
from services.common.topics import build_topics, record_key
from services.notifier import service
from services.notifier.http import Response
from services.notifier.service import Notifier
from services.notifier.signing import message
from tests.unit.notifier.builders import StoredAtOnce, make_alert, make_subscription

TOPICS = build_topics("newsalert.", 6, 1)
KEY = record_key("acme", "desk")


def _answered_after(
    edit: Callable[[Subscription], Subscription | None], status: int = 410, per_request: int = 1
) -> tuple[Notifier, StoredAtOnce, list[str]]:
    """A notifier knowing "desk", whose endpoint answers `status` once the tenant has made
    `edit` (None: deleted) while the request was out; what it stores; the URLs it posts to."""
    notifier = Notifier(NotifierSettings())
    original = make_subscription(sub_id="desk").model_copy(
        update={"alerts_per_request": per_request}
    )
    notifier._on_subscription(KEY, original)
    stored = notifier._out = StoredAtOnce()  # type: ignore[assignment]
    posted: list[str] = []

    async def post(url: str, body: bytes, headers: dict[str, str]) -> Response:
        posted.append(url)
        notifier._on_subscription(KEY, edit(original))
        return Response(status=status, error=None, retry_after=None, seconds=0.001)

    notifier._client.post = post  # type: ignore[method-assign]
    return notifier, stored, posted


def _task() -> DeliveryTask:
    return DeliveryTask(
        alert=make_alert(), subscription_id="desk", next_attempt=1, not_before=datetime.now(UTC)
    )


def _written(stored: StoredAtOnce) -> list[Subscription]:
    return [
        Subscription.model_validate_json(value or b"")
        for topic, _, value in stored.records
        if topic == TOPICS.subscriptions.name
    ]


async def test_an_edit_made_during_the_request_survives_the_disabling() -> None:
    notifier, stored, _ = _answered_after(
        lambda s: s.model_copy(update={"description": "night desk", "alerts_per_request": 5})
    )

    await notifier._settle([_task()])

    [disabled] = _written(stored)
    assert not disabled.enabled
    assert disabled.disabled_reason == "the endpoint answered 410 Gone"
    assert (disabled.description, disabled.alerts_per_request) == ("night desk", 5)
    assert notifier.subscriptions.get("acme", "desk") == disabled


async def test_a_subscription_pointed_elsewhere_during_the_request_stays_enabled() -> None:
    notifier, stored, _ = _answered_after(
        lambda s: s.model_copy(update={"url": "https://new.example/in"})
    )

    await notifier._settle([_task()])

    assert _written(stored) == []
    latest = notifier.subscriptions.get("acme", "desk")
    assert latest is not None
    assert latest.enabled
    assert latest.url == "https://new.example/in"


async def test_alerts_the_old_url_answered_410_go_on_to_the_new_url_as_retries() -> None:
    notifier, stored, _ = _answered_after(
        lambda s: s.model_copy(update={"url": "https://new.example/in"})
    )
    task = _task()

    await notifier._settle([task])

    [queued] = [
        DeliveryTask.model_validate_json(value or b"")
        for topic, _, value in stored.records
        if topic == TOPICS.retries[0].name
    ]
    assert (queued.alert, queued.next_attempt) == (task.alert, 2)
    [audit] = [
        DeliveryAttempt.model_validate_json(value or b"")
        for topic, _, value in stored.records
        if topic == TOPICS.deliveries.name
    ]
    assert (audit.outcome, audit.status_code) == (OutcomeKind.GONE, 410)
    assert notifier.health("acme", "desk").failing_since is None, "the old URL's answer"


@pytest.mark.parametrize(("changed_hours_ago", "disabled"), [(1, False), (24 * 30, True)])
async def test_failures_from_before_the_tenants_last_change_do_not_disable_it(
    changed_hours_ago: int, disabled: bool
) -> None:
    # A new URL, or enabled again after a fix: learnt live or from the topic at a restart,
    # the subscription's `updated_at` says when.
    now = datetime.now(UTC)
    notifier = Notifier(NotifierSettings())
    changed = make_subscription(sub_id="desk").model_copy(
        update={"updated_at": now - timedelta(hours=changed_hours_ago)}
    )
    notifier._on_subscription(KEY, changed)
    health = notifier.health("acme", "desk")
    for days_ago in (9, 2):  # failing for a week: past the 5 days that disable
        health.record(OutcomeKind.RETRY, now - timedelta(days=days_ago), "timeout")
    stored = notifier._out = StoredAtOnce()  # type: ignore[assignment]

    async def post(url: str, body: bytes, headers: dict[str, str]) -> Response:
        return Response(status=503, error=None, retry_after=None, seconds=0.001)

    notifier._client.post = post  # type: ignore[method-assign]

    await notifier._settle([_task()])

    assert [not s.enabled for s in _written(stored)] == ([True] if disabled else [])


async def test_a_subscription_its_tenant_disabled_during_the_request_keeps_their_reason() -> None:
    notifier, stored, _ = _answered_after(
        lambda s: s.model_copy(update={"enabled": False, "disabled_reason": "paused by ops"})
    )

    await notifier._settle([_task()])

    assert _written(stored) == []
    latest = notifier.subscriptions.get("acme", "desk")
    assert latest is not None
    assert latest.disabled_reason == "paused by ops"


async def test_a_subscription_deleted_during_the_request_is_not_written_back() -> None:
    notifier, stored, _ = _answered_after(lambda s: None)

    await notifier._settle([_task()])

    assert _written(stored) == []
    assert notifier.subscriptions.get("acme", "desk") is None


def _to_new_url(subscription: Subscription) -> Subscription:
    return subscription.model_copy(update={"url": "https://new.example/in"})


def _topics_written(stored: StoredAtOnce) -> list[str]:
    return sorted(topic for topic, _, _ in stored.records)


async def test_a_last_attempt_failing_at_a_replaced_url_goes_on_to_the_new_one() -> None:
    notifier, stored, _ = _answered_after(_to_new_url, status=503)
    last = len(notifier.schedule.delays_s) + 1
    task = _task().model_copy(update={"next_attempt": last})

    await notifier._settle([task])

    assert _topics_written(stored) == sorted([TOPICS.deliveries.name, TOPICS.retries[0].name])
    assert not notifier.health("acme", "desk").failing, "the old URL's failure, not the new's"


async def test_no_half_of_a_split_batch_goes_to_a_replaced_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tasks = [
        _task().model_copy(update={"alert": make_alert(article_id=f"art-{n}")}) for n in range(4)
    ]
    one = len(message([tasks[0].alert], batched=True)[1])
    monkeypatch.setattr(service, "MAX_BATCH_BODY_BYTES", 2 * one + 200)
    notifier, stored, posted = _answered_after(_to_new_url, status=503, per_request=10)

    await notifier._settle(tasks)

    assert posted == ["https://hooks.example/in"]
    queued = [
        DeliveryTask.model_validate_json(value or b"")
        for topic, _, value in stored.records
        if topic == TOPICS.retries[0].name
    ]
    assert sorted((t.alert.article.article_id, t.next_attempt) for t in queued) == [
        ("art-0", 2),
        ("art-1", 2),
        ("art-2", 1),
        ("art-3", 1),
    ], "the posted half as retries, the other unattempted"
