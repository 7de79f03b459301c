"""The notifier against a real broker and real HTTP receivers on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from standardwebhooks import Webhook

from schemas.alert import Alert, ArticleSummary
from schemas.common import Severity
from schemas.delivery import DeadLetter, DeliveryAttempt, DeliveryTask
from schemas.subscription import SigningSecret, Subscription, SubscriptionFilter
from services.cli.main import main
from services.common.kafka import encode
from services.common.settings import NotifierSettings
from services.common.topics import Topics, record_key
from services.demo.receiver import Answer, Received, Receiver, running_receiver
from services.ingest.api import new_secret
from services.notifier.service import Notifier
from services.notifier.signing import batch_id
from tests.support.ingest import RETRY_SCHEDULE_S, ingest_settings, running_ingest
from tests.support.kafka_io import produce, read_until

FAST_RETRIES = [0.3, 0.6, 0.9]  # as many steps as the test topics have retry queues
NOW = datetime.now(UTC)


def _alert(n: int, tenant: str = "acme", **fields: Any) -> Alert:
    values: dict[str, Any] = {
        "alert_id": "alert_" + hashlib.sha256(f"{tenant}{n}".encode()).hexdigest()[:32],
        "tenant": tenant,
        "rule_id": "li-shangfu",
        "rule_name": "Li Shangfu",
        "rule_version": "0123456789abcdef",
        "severity": Severity.HIGH,
        "tags": ["people"],
        "article": ArticleSummary(
            article_id=f"a{n}", title=f"Li Shangfu, part {n}", received_at=datetime.now(UTC)
        ),
        "evidence": [],
        "snippet": None,
        "story_id": f"story_{n}",
        "first_of_story": True,
        "story_sources": [],
        "matched_at": datetime.now(UTC),
    }
    values.update(fields)
    return Alert(**values)


def _subscription(
    sub_id: str,
    url: str,
    secret: str,
    tenant: str = "acme",
    alerts_per_request: int = 1,
    **filters: Any,
) -> Subscription:
    return Subscription(
        id=sub_id,
        tenant=tenant,
        url=url,
        alerts_per_request=alerts_per_request,
        filter=SubscriptionFilter(**filters),
        secrets=[SigningSecret(secret=secret, created_at=NOW)],
        created_at=NOW,
        updated_at=NOW,
    )


async def _publish(bootstrap: str, topics: Topics, *items: Subscription | Alert) -> None:
    for item in items:
        if isinstance(item, Subscription):
            key = record_key(item.tenant, item.id)
            await produce(bootstrap, topics.subscriptions.name, [(key.encode(), encode(item))])
        else:
            key = record_key(item.tenant, item.rule_id)
            await produce(bootstrap, topics.alerts.name, [(key.encode(), encode(item))])


def _settings(bootstrap: str, prefix: str, **overrides: Any) -> NotifierSettings:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic_prefix": prefix,
        "partitions": 3,
        "retry_schedule_s": FAST_RETRIES,
        "webhook_allow_http": True,
        "webhook_allow": ["127.0.0.0/8"],
        "webhook_timeout_s": 2,
        "notifier_group": f"notifier-{prefix}",
    }
    options.update(overrides)
    assert len(options["retry_schedule_s"]) == len(RETRY_SCHEDULE_S)
    return NotifierSettings(**options)


@asynccontextmanager
async def _notifier(settings: NotifierSettings, **kwargs: Any) -> AsyncIterator[Notifier]:
    notifier = Notifier(settings, **kwargs)
    await notifier.start(port=0)
    try:
        yield notifier
    finally:
        await notifier.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


NotifierFactory = Callable[..., Any]


def _verify_by_hand(secret: str, headers: dict[str, str], body: bytes) -> None:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" in headers["webhook-signature"].split()


async def test_every_delivery_is_signed_as_standard_webhooks_says(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    secret = new_secret()
    url = receiver.script("/hook")
    alerts = [_alert(n) for n in range(5)]
    await _publish(kafka_bootstrap, topics, _subscription("main", url, secret), *alerts)
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        await receiver.wait_for(lambda rs: len(rs) >= 5)
    assert {r.headers["webhook-id"] for r in receiver.requests} == {a.alert_id for a in alerts}
    for request in receiver.requests:
        payload = Webhook(secret).verify(request.body, request.headers)
        _verify_by_hand(secret, request.headers, request.body)
        assert payload["type"] == "alert.created"
        assert payload["data"]["alert_id"] == request.headers["webhook-id"]
        assert request.headers["Content-Type"] == "application/json"


def _batched(requests: list[Received]) -> list[list[str]]:
    """The alert ids each batch request carried, checking what every batch must be."""
    carried = []
    for request in requests:
        payload = json.loads(request.body)
        assert payload["type"] == "alert.batch"
        ids = [alert["alert_id"] for alert in payload["data"]["alerts"]]
        assert request.headers["webhook-id"] == batch_id(ids)
        carried.append(ids)
    return carried


async def test_a_batching_subscription_gets_alerts_read_together_in_signed_batches(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    secret = new_secret()
    url = receiver.script("/batches")
    alerts = [_alert(n) for n in range(12)]  # one rule: one partition, read in one poll
    subscription = _subscription("batches", url, secret, alerts_per_request=5)
    await _publish(kafka_bootstrap, topics, subscription, *alerts)
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        await receiver.wait_for(lambda _: receiver.alerts() >= len(alerts))
    carried = _batched(receiver.requests)
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)
        _verify_by_hand(secret, request.headers, request.body)
    assert sorted(i for ids in carried for i in ids) == sorted(a.alert_id for a in alerts)
    assert [len(ids) for ids in carried] == [5, 5, 2]
    assert [i for ids in carried for i in ids] == [a.alert_id for a in alerts], "in order"


async def test_a_failed_batch_is_retried_alert_by_alert_until_each_is_delivered(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    secret = new_secret()
    url = receiver.script("/flaky", Answer(503), Answer(500))
    alerts = [_alert(n) for n in range(4)]
    subscription = _subscription("flaky", url, secret, alerts_per_request=10)
    await _publish(kafka_bootstrap, topics, subscription, *alerts)
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        await receiver.wait_for(lambda rs: sum(len(ids) for ids in _batched(rs[2:])) >= len(alerts))
    first, second, *delivered = _batched(receiver.requests)
    wanted = sorted(a.alert_id for a in alerts)
    assert sorted(first) == wanted
    # The failed alerts wait in the retry queue on their own; what is due together is sent
    # together again. Every one of them is delivered in the end.
    assert set(second) <= set(wanted)
    assert sorted(i for ids in delivered for i in ids) == wanted, "each once, in the end"
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)


async def test_every_alert_of_a_batch_that_never_gets_through_is_dead_lettered(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    url = receiver.script("/down", then=Answer(500))
    alerts = [_alert(n) for n in range(3)]
    subscription = _subscription("down", url, new_secret(), alerts_per_request=10)
    await _publish(kafka_bootstrap, topics, subscription, *alerts)
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        records = await read_until(
            kafka_bootstrap, topics.deliveries_dlq.name, lambda rs: len(rs) >= len(alerts)
        )
        audited = await read_until(
            kafka_bootstrap, topics.deliveries.name, lambda rs: len(rs) >= 4 * len(alerts)
        )
    attempts = [DeliveryAttempt.model_validate_json(r.value) for r in audited]
    assert sorted((a.alert_id, a.attempt) for a in attempts) == sorted(
        (alert.alert_id, n) for alert in alerts for n in (1, 2, 3, 4)
    ), "every alert's every attempt is on the deliveries topic"
    letters = [DeadLetter.model_validate_json(r.value) for r in records]
    assert sorted(letter.alert.alert_id for letter in letters) == sorted(a.alert_id for a in alerts)
    for letter in letters:
        assert [a.attempt for a in letter.attempts] == [1, 2, 3, 4]
        assert all(a.status_code == 500 for a in letter.attempts)
    attempted = [i for ids in _batched(receiver.at("/down")) for i in ids]
    assert sorted(attempted) == sorted(a.alert_id for a in alerts for _ in range(4))


async def test_a_subscription_only_receives_its_own_tenants_alerts(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    acme = _subscription("hook", receiver.script("/acme"), new_secret(), tenant="acme")
    globex = _subscription("hook", receiver.script("/globex"), new_secret(), tenant="globex")
    alerts = [_alert(n, tenant="acme") for n in range(3)] + [
        _alert(n, tenant="globex") for n in range(3, 5)
    ]
    await _publish(kafka_bootstrap, topics, acme, globex, *alerts)
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        await receiver.wait_for(lambda rs: len(rs) >= 5)
    for path, tenant in (("/acme", "acme"), ("/globex", "globex")):
        received = [json.loads(r.body)["data"]["tenant"] for r in receiver.at(path)]
        assert received
        assert set(received) == {tenant}


async def test_filters_choose_the_alerts_a_subscription_gets(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    picky = _subscription(
        "picky", receiver.script("/picky"), new_secret(), min_severity=Severity.CRITICAL
    )
    everything = _subscription(
        "all", receiver.script("/all"), new_secret(), first_of_story_only=False
    )
    alerts = [
        _alert(1, severity=Severity.CRITICAL),
        _alert(2, severity=Severity.LOW),
        _alert(3, first_of_story=False),
    ]
    await _publish(kafka_bootstrap, topics, picky, everything, *alerts)
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        await receiver.wait_for(lambda rs: len(rs) >= 4)
    assert [r.headers["webhook-id"] for r in receiver.at("/picky")] == [alerts[0].alert_id]
    assert {r.headers["webhook-id"] for r in receiver.at("/all")} == {a.alert_id for a in alerts}


async def test_failures_are_retried_with_the_same_id_and_a_fresh_signature(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    secret = new_secret()
    url = receiver.script("/flaky", Answer(500), Answer(503), Answer(429, {"Retry-After": "1"}))
    alert = _alert(1)
    await _publish(kafka_bootstrap, topics, _subscription("flaky", url, secret), alert)
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        requests = await receiver.wait_for(lambda rs: len(rs) >= 4)
    assert [r.headers["webhook-id"] for r in requests] == [alert.alert_id] * 4
    for request in requests:
        Webhook(secret).verify(request.body, request.headers)
    assert requests[3].at - requests[2].at >= 0.95, "Retry-After: 1 was honoured"


async def test_after_the_last_attempt_the_alert_goes_to_the_dead_letter_topic(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    url = receiver.script("/down", then=Answer(500))
    alert = _alert(1)
    await _publish(kafka_bootstrap, topics, _subscription("down", url, new_secret()), alert)
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        records = await read_until(kafka_bootstrap, topics.deliveries_dlq.name, lambda rs: rs)
    letter = DeadLetter.model_validate_json(records[0].value)
    assert letter.alert.alert_id == alert.alert_id
    assert [a.attempt for a in letter.attempts] == [1, 2, 3, 4]
    assert all(a.status_code == 500 for a in letter.attempts)
    assert len(receiver.at("/down")) == 4


async def test_410_gone_disables_the_subscription(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    url = receiver.script("/gone", then=Answer(410))
    await _publish(kafka_bootstrap, topics, _subscription("gone", url, new_secret()), _alert(1))
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)) as notifier:
        records = await read_until(
            kafka_bootstrap,
            topics.subscriptions.name,
            lambda rs: any(not Subscription.model_validate_json(r.value).enabled for r in rs),
        )
        await _publish(kafka_bootstrap, topics, _alert(2))
        assert notifier.subscriptions.get("acme", "gone") is not None
    disabled = Subscription.model_validate_json(records[-1].value)
    assert disabled.disabled_reason == "the endpoint answered 410 Gone"
    assert len(receiver.at("/gone")) == 1, "nothing more was sent to a gone endpoint"


async def test_pending_retries_survive_a_restart_of_the_notifier(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    url = receiver.script("/later", Answer(503))
    alert = _alert(1)
    await _publish(kafka_bootstrap, topics, _subscription("later", url, new_secret()), alert)
    slow = _settings(kafka_bootstrap, topic_prefix, retry_schedule_s=[3, 3, 3])
    async with _notifier(slow):
        queued = await read_until(kafka_bootstrap, topics.retries[0].name, lambda rs: rs)
    assert DeliveryTask.model_validate_json(queued[0].value).next_attempt == 2
    assert len(receiver.at("/later")) == 1
    async with _notifier(slow):  # a new process would do the same: the retry is in Kafka
        requests = await receiver.wait_for(lambda rs: len(rs) >= 2)
    assert [r.headers["webhook-id"] for r in requests] == [alert.alert_id] * 2


async def test_a_slow_endpoint_never_delays_deliveries_to_the_others(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    slow = receiver.script("/slow", then=Answer(200, delay_s=1.5))
    fast = receiver.script("/fast")
    alerts = [_alert(n) for n in range(40)]
    await _publish(
        kafka_bootstrap,
        topics,
        _subscription("slow", slow, new_secret()),
        _subscription("fast", fast, new_secret()),
        *alerts,
    )
    settings = _settings(kafka_bootstrap, topic_prefix, webhook_concurrency=2, webhook_timeout_s=5)
    async with _notifier(settings):
        await receiver.wait_for(lambda rs: len([r for r in rs if r.path == "/fast"]) >= 40)
        slow_done = len(receiver.at("/slow"))
    # The fast endpoint had all 40 while the slow one, two at a time, had only a few.
    assert slow_done < 20


async def _deferred_on_the_way(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver, paths: list[str]
) -> tuple[int, int]:
    """20 alerts to one subscription per path, each endpoint answering in 20 ms, one request
    at a time and a backlog of 1. Once every endpoint has every alert: how many deliveries
    were deferred on the way, and how many records the first retry queue holds."""
    alerts = [_alert(n) for n in range(20)]
    subscriptions = [
        _subscription(
            path.strip("/"), receiver.script(path, then=Answer(200, delay_s=0.02)), new_secret()
        )
        for path in paths
    ]
    await _publish(kafka_bootstrap, topics, *subscriptions, *alerts)
    settings = _settings(kafka_bootstrap, topic_prefix, webhook_concurrency=1, webhook_backlog=1)
    async with _notifier(settings) as notifier:
        for path in paths:
            await receiver.wait_for(
                lambda rs, path=path: (
                    len({r.headers["webhook-id"] for r in rs if r.path == path}) >= len(alerts)
                ),
                timeout_s=60,
            )
        deferred = notifier.metrics.deliveries.labels("deferred")._value.get()
    queued = await read_until(
        kafka_bootstrap, topics.retries[0].name, lambda rs: len(rs) >= deferred
    )
    return int(deferred), len(queued)


async def test_behind_a_backlog_deliveries_step_aside_for_another_endpoint(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    deferred, queued = await _deferred_on_the_way(
        kafka_bootstrap, topics, topic_prefix, receiver, ["/one", "/two"]
    )

    assert deferred > 0
    assert queued == deferred


async def test_with_one_endpoint_a_backlog_waits_in_its_lane_and_nothing_is_deferred(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    deferred, _ = await _deferred_on_the_way(
        kafka_bootstrap, topics, topic_prefix, receiver, ["/only"]
    )

    assert deferred == 0


async def test_a_hung_endpoint_alone_cannot_keep_its_deliveries_waiting_for_ever(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    url = receiver.script("/hung", then=Answer(200, delay_s=3))
    alerts = [_alert(n) for n in range(4)]
    await _publish(kafka_bootstrap, topics, _subscription("hung", url, new_secret()), *alerts)
    settings = _settings(
        kafka_bootstrap, topic_prefix, webhook_concurrency=1, webhook_max_wait_s=0.5
    )
    async with _notifier(settings):
        queued = await read_until(
            kafka_bootstrap, topics.retries[0].name, lambda rs: len(rs) >= 1, timeout_s=20
        )
    task = DeliveryTask.model_validate_json(queued[0].value)
    # Deferred while the one request to the endpoint hung: unattempted, a first attempt still.
    assert task.alert.alert_id in {a.alert_id for a in alerts}
    assert (task.subscription_id, task.next_attempt, task.attempts) == ("hung", 1, [])


async def test_a_redirect_is_a_failure_and_is_not_followed(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    url = receiver.script("/moved", Answer(302, {"Location": receiver.url + "/elsewhere"}))
    await _publish(kafka_bootstrap, topics, _subscription("moved", url, new_secret()), _alert(1))
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        await receiver.wait_for(lambda rs: len(rs) >= 2)
    assert [r.path for r in receiver.requests] == ["/moved", "/moved"]


class _PrivateDns(AbstractResolver):
    """A resolver that answers with a private address and fails the test on any other use."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host, host="10.1.2.3", port=port, family=family, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


async def test_a_name_that_resolves_to_a_private_address_is_refused_before_any_connect(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str
) -> None:
    from services.common.ssrf import UrlPolicy
    from services.notifier.http import GuardedResolver

    dns = _PrivateDns()
    # The guarded resolver filters the answer: there is nothing left to connect to.
    guarded = GuardedResolver(UrlPolicy.from_strings(True, []), inner=dns)
    sub = _subscription("rebind", "http://hooks.rebinding.test/hook", new_secret())
    await _publish(kafka_bootstrap, topics, sub, _alert(1))
    settings = _settings(kafka_bootstrap, topic_prefix, webhook_allow=[])
    async with _notifier(settings, resolver=guarded):
        queued = await read_until(kafka_bootstrap, topics.retries[0].name, lambda rs: rs)
    task = DeliveryTask.model_validate_json(queued[0].value)
    assert dns.asked == ["hooks.rebinding.test"]
    error = task.attempts[0].error or ""
    assert "10.1.2.3" in error
    assert "refused" in error
    assert task.attempts[0].status_code is None
    assert timedelta(0) < task.not_before - task.attempts[0].attempted_at


KEY = "na_acme-key-for-notifier-tests-012"


async def test_a_dead_letter_is_replayed_with_the_same_id_and_a_fresh_signature(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    secret = new_secret()
    url = receiver.script("/down", *[Answer(500)] * 4)  # every attempt fails, then 200
    alert = _alert(1)
    await _publish(kafka_bootstrap, topics, _subscription("down", url, secret), alert)
    ingest = ingest_settings(kafka_bootstrap, topic_prefix, {"acme": KEY})
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        await read_until(kafka_bootstrap, topics.deliveries_dlq.name, lambda rs: rs)
        async with running_ingest(ingest, KEY) as api:
            status, letters = await api.call("GET", "/v1/dead-letters?subscription_id=down")
            assert status == 200
            assert [letter["alert"]["alert_id"] for letter in letters] == [alert.alert_id]
            replay = {"subscription_id": "down", "alert_id": alert.alert_id}
            status, accepted = await api.call("POST", "/v1/replays", json=replay)
            assert status == 202, accepted
            requests = await receiver.wait_for(lambda rs: len(rs) >= 5)
    first, again = requests[0], requests[4]
    assert again.headers["webhook-id"] == alert.alert_id
    assert int(again.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])
    assert again.headers["webhook-signature"] != first.headers["webhook-signature"] or (
        again.headers["webhook-timestamp"] == first.headers["webhook-timestamp"]
    )
    Webhook(secret).verify(again.body, again.headers)


async def test_every_alert_of_a_subscription_in_a_time_range_can_be_replayed(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    mine = _subscription("hook", receiver.script("/hook"), new_secret())
    alerts = [_alert(n) for n in range(3)]
    other_tenant = _alert(9, tenant="globex")
    await _publish(kafka_bootstrap, topics, mine, *alerts, other_tenant)
    ingest = ingest_settings(kafka_bootstrap, topic_prefix, {"acme": KEY})
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        await receiver.wait_for(lambda rs: len(rs) >= 3)
        async with running_ingest(ingest, KEY) as api:
            until = datetime.now(UTC) + timedelta(seconds=1)
            replay = {
                "subscription_id": "hook",
                "since": since.isoformat(),
                "until": until.isoformat(),
            }
            status, _ = await api.call("POST", "/v1/replays", json=replay)
            assert status == 202
            requests = await receiver.wait_for(lambda rs: len(rs) >= 6)
    ids = [r.headers["webhook-id"] for r in requests]
    assert sorted(ids) == sorted([a.alert_id for a in alerts] * 2)


async def test_an_endpoint_failing_for_too_long_is_disabled_and_the_api_shows_why(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    url = receiver.script("/broken", then=Answer(500))
    await _publish(kafka_bootstrap, topics, _subscription("broken", url, new_secret()), _alert(1))
    # "Failing for 5 days", compressed to half a second.
    settings = _settings(kafka_bootstrap, topic_prefix, disable_after_h=0.5 / 3600)
    async with _notifier(settings):
        await read_until(
            kafka_bootstrap,
            topics.subscriptions.name,
            lambda rs: any(not Subscription.model_validate_json(r.value).enabled for r in rs),
        )
        await read_until(
            kafka_bootstrap,
            topics.endpoint_status.name,
            lambda rs: any(json.loads(r.value)["failed_attempts"] >= 2 for r in rs),
        )
    ingest = ingest_settings(kafka_bootstrap, topic_prefix, {"acme": KEY})
    async with running_ingest(ingest, KEY) as api:
        status, view = await api.call("GET", "/v1/subscriptions/broken")
    assert status == 200
    assert view["enabled"] is False
    assert "every delivery attempt failed since" in view["disabled_reason"]
    assert view["status"]["state"] == "failing"
    assert view["status"]["last_error"] == "HTTP 500"
    assert view["status"]["failed_attempts"] >= 2


async def test_the_cli_lists_dead_letters_and_replays_one(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = receiver.script("/down", *[Answer(503)] * 4)
    alert = _alert(7)
    await _publish(kafka_bootstrap, topics, _subscription("down", url, new_secret()), alert)
    ingest = ingest_settings(kafka_bootstrap, topic_prefix, {"acme": KEY})
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)):
        await read_until(kafka_bootstrap, topics.deliveries_dlq.name, lambda rs: rs)
        async with running_ingest(ingest, KEY) as api:
            options = ["--api-url", api.url, "--api-key", KEY]
            capsys.readouterr()
            listed = await asyncio.to_thread(main, ["deliveries", "list", *options])
            out = capsys.readouterr().out
            assert listed == 0
            assert alert.alert_id in out
            assert "down" in out
            replay = ["deliveries", "replay", "--subscription", "down", "--alert", alert.alert_id]
            assert await asyncio.to_thread(main, [*replay, *options]) == 0
            assert "queued" in capsys.readouterr().out
            requests = await receiver.wait_for(lambda rs: len(rs) >= 5)
    assert requests[4].headers["webhook-id"] == alert.alert_id


async def test_a_rotated_secret_and_the_new_one_both_sign_during_the_overlap(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    ingest = ingest_settings(kafka_bootstrap, topic_prefix, {"acme": KEY})
    async with running_ingest(ingest, KEY) as api:
        status, created = await api.call(
            "PUT", "/v1/subscriptions/hook", json={"url": receiver.script("/hook")}
        )
        assert status == 201
        status, rotated = await api.call("POST", "/v1/subscriptions/hook/rotate-secret")
        assert status == 200
        _, view = await api.call("GET", "/v1/subscriptions/hook")
    old, new = created["secret"], rotated["secret"]
    assert old != new
    assert "secret" not in view
    assert all(old not in json.dumps(s) for s in view["secrets"]), "shown once, at creation"
    await _publish(kafka_bootstrap, topics, _alert(1))
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)) as notifier:
        [request] = await receiver.wait_for(lambda rs: len(rs) >= 1)
    # Stopped: every delivery in flight has settled and been counted.
    sample = notifier.registry.get_sample_value
    assert sample("newsalert_notifier_deliveries_total", {"outcome": "delivered"}) == 1
    assert sample("newsalert_notifier_attempts_total", {"outcome": "delivered"}) == 1
    assert sample("newsalert_notifier_end_to_end_seconds_count") == 1
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Webhook(secret).verify(request.body, request.headers)
        _verify_by_hand(secret, request.headers, request.body)


async def test_a_huge_response_body_is_not_read_past_64_kib(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, receiver: Receiver
) -> None:
    url = receiver.script("/chatty", Answer(200, body=b"x" * (20 * 1024 * 1024)))
    await _publish(kafka_bootstrap, topics, _subscription("chatty", url, new_secret()), _alert(1))
    async with _notifier(_settings(kafka_bootstrap, topic_prefix)) as notifier:
        records = await read_until(kafka_bootstrap, topics.deliveries.name, lambda rs: rs)
        assert notifier.registry.get_sample_value(
            "newsalert_notifier_deliveries_total", {"outcome": "delivered"}
        )
    assert json.loads(records[0].value)["outcome"] == "delivered"
