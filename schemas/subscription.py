"""Webhook subscriptions: where a tenant's alerts are delivered, and which of them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_serializer

from schemas.common import (
    SCHEMA_VERSION,
    AwareDatetime,
    CleanText,
    Contract,
    Severity,
    Slug,
    TenantId,
)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
MAX_ALERTS_PER_REQUEST = 500

# One description for the field wherever a subscription is shown.
AlertsPerRequest = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_ALERTS_PER_REQUEST,
        description=(
            "1 (the default): each alert is its own message, of type alert.created. Above 1: "
            "alerts read together are sent together, up to this many, as one message of type "
            "alert.batch whose data.alerts holds them; nothing waits for a batch to fill."
        ),
    ),
]


class SubscriptionFilter(Contract):
    """Which alerts a subscription wants. Empty lists mean "any"."""

    rule_ids: list[Slug] = Field(default_factory=list)
    tags: list[Slug] = Field(default_factory=list)
    min_severity: Severity = Severity.INFO
    first_of_story_only: bool = Field(
        default=True, description="Deliver only the first alert of each (rule, story)."
    )


class SubscriptionIn(Contract):
    """A subscription as a client creates or replaces it."""

    url: CleanText = Field(min_length=8, max_length=2048)
    description: CleanText = Field(default="", max_length=500)
    filter: SubscriptionFilter = Field(default_factory=SubscriptionFilter)
    enabled: bool = True
    alerts_per_request: AlertsPerRequest = 1


class SigningSecret(Contract):
    """A `whsec_` secret; several are active during a rotation's overlap window."""

    secret: SecretStr
    created_at: AwareDatetime
    expires_at: AwareDatetime | None = None

    @field_serializer("secret", when_used="json")
    def _reveal_on_the_topic(self, secret: SecretStr) -> str:
        # The compacted topic is the only store of secrets, so its JSON must carry them;
        # repr() and str() still print `**********`.
        return secret.get_secret_value()


class Subscription(Contract):
    """A subscription as stored on the compacted subscriptions topic."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: Slug
    tenant: TenantId
    url: str = Field(min_length=8, max_length=2048)
    description: str = ""
    filter: SubscriptionFilter = Field(default_factory=SubscriptionFilter)
    enabled: bool = True
    disabled_reason: str | None = None
    alerts_per_request: AlertsPerRequest = 1
    secrets: list[SigningSecret] = Field(min_length=1, max_length=4)
    created_at: AwareDatetime
    updated_at: AwareDatetime
