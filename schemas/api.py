"""Bodies of the ingest HTTP API that are not events themselves: receipts and views."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from schemas.common import AwareDatetime, Contract, Slug, TenantId
from schemas.health import EndpointStatus
from schemas.subscription import AlertsPerRequest, SubscriptionFilter


class ArticleStatus(StrEnum):
    """What happened to one submitted article."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


class ArticleReceipt(Contract):
    """The answer for one article: its id (when it has one) and what happened to it."""

    line: int | None = Field(default=None, description="1-based line of an NDJSON batch.")
    article_id: str | None = None
    status: ArticleStatus
    errors: list[dict[str, Any]] = Field(default_factory=list)


class BatchReceipt(Contract):
    """The answer for an NDJSON batch: counts and one receipt per line."""

    accepted: int
    duplicates: int
    refused: int
    items: list[ArticleReceipt]


class SecretInfo(Contract):
    """A signing secret as the API shows it after creation: never the secret itself."""

    prefix: str = Field(description="The first characters, to tell secrets apart.")
    created_at: AwareDatetime
    expires_at: AwareDatetime | None = None


class SubscriptionView(Contract):
    """A subscription as the API returns it."""

    id: Slug
    tenant: TenantId
    url: str
    description: str
    filter: SubscriptionFilter
    enabled: bool
    disabled_reason: str | None = None
    alerts_per_request: AlertsPerRequest = 1
    secrets: list[SecretInfo]
    created_at: AwareDatetime
    updated_at: AwareDatetime
    status: EndpointStatus | None = Field(
        default=None, description="How deliveries to the endpoint go; null before the first."
    )


class SubscriptionCreated(Contract):
    """A new subscription, or a rotated secret: the only time the secret is shown."""

    subscription: SubscriptionView
    secret: str = Field(description="whsec_...: store it now, it is not shown again.")


class WatchlistApplied(Contract):
    """The outcome of applying a watchlist file."""

    tenant: TenantId
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    deleted: list[str]
