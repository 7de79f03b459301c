"""Alerts, subscriptions and secrets for the notifier's unit tests."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from schemas.alert import Alert, ArticleSummary, Evidence, Snippet
from schemas.common import Severity
from schemas.identity import alert_id
from schemas.subscription import SigningSecret, Subscription, SubscriptionFilter
from services.common.batching_producer import Record

T0 = datetime(2023, 4, 15, 9, 30, tzinfo=UTC)

# Fixed test keys (32 bytes each, like ingest's), so failures are reproducible.
SECRET_A = "whsec_" + base64.b64encode(bytes(range(32))).decode()
SECRET_B = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()


def make_alert(
    *,
    tenant: str = "acme",
    rule_id: str = "li-shangfu",
    severity: Severity = Severity.HIGH,
    tags: list[str] | None = None,
    first_of_story: bool = True,
    article_id: str = "art-1",
    title: str = "Li Shangfu meets 李尚福's counterpart",
) -> Alert:
    """A valid alert; the text is not ASCII on purpose (the body must be UTF-8, unescaped)."""
    return Alert(
        alert_id=alert_id(tenant, rule_id, "v1", article_id),
        tenant=tenant,
        rule_id=rule_id,
        rule_name="Li Shangfu",
        rule_version="v1",
        severity=severity,
        tags=["defence"] if tags is None else tags,
        article=ArticleSummary(
            article_id=article_id,
            url="https://news.example/a/1",
            source="example",
            title=title,
            language="en",
            published_at=T0 - timedelta(minutes=5),
            received_at=T0,
        ),
        evidence=[Evidence(field="title", start=0, end=10, text="Li Shangfu")],
        snippet=Snippet(field="title", text=title, match_start=0, match_end=10),
        story_id="story_1",
        first_of_story=first_of_story,
        story_sources=["example"],
        matched_at=T0 + timedelta(seconds=1),
    )


def make_secret(
    secret: str = SECRET_A, created_at: datetime = T0, expires_at: datetime | None = None
) -> SigningSecret:
    """A signing secret as a subscription holds it."""
    return SigningSecret(secret=SecretStr(secret), created_at=created_at, expires_at=expires_at)


def make_subscription(
    *,
    sub_id: str = "desk",
    tenant: str = "acme",
    enabled: bool = True,
    secrets: list[SigningSecret] | None = None,
    **filter_fields: Any,
) -> Subscription:
    """A valid subscription; keyword arguments other than these go to its filter."""
    return Subscription(
        id=sub_id,
        tenant=tenant,
        url="https://hooks.example/in",
        filter=SubscriptionFilter(**filter_fields),
        enabled=enabled,
        secrets=[make_secret()] if secrets is None else secrets,
        created_at=T0,
        updated_at=T0,
    )


class StoredAtOnce:
    """Stands in for the notifier's batching producer: keeps what it is sent, stored at once."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.sends = 0

    def send(self, records: list[Record]) -> asyncio.Future[None]:
        """Keep `records`; the returned future is already done."""
        self.sends += 1
        self.records.extend(records)
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stored.set_result(None)
        return stored

    def topics(self) -> list[str]:
        """The topic of each record kept, in order."""
        return [topic for topic, _, _ in self.records]
