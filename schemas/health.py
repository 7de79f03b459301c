"""Webhook endpoint health: how a subscription's deliveries are going, for the API and a topic."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from schemas.common import SCHEMA_VERSION, AwareDatetime, Contract, Slug, TenantId


class EndpointState(StrEnum):
    """Whether the endpoint's latest attempts succeed."""

    HEALTHY = "healthy"
    FAILING = "failing"


class EndpointStatus(Contract):
    """The delivery record of one subscription's endpoint, keyed `tenant/subscription_id`.

    Whether the subscription is enabled, and why not, stays on the subscription itself; this
    says how its deliveries went.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    tenant: TenantId
    subscription_id: Slug
    state: EndpointState = Field(
        description="failing: every attempt since `failing_since` failed; healthy otherwise, "
        "including before the first attempt."
    )
    delivered: int = Field(default=0, ge=0, description="Attempts answered with a 2xx.")
    failed_attempts: int = Field(default=0, ge=0, description="Attempts that were not delivered.")
    dead_letters: int = Field(
        default=0, ge=0, description="Alerts given up on: retries exhausted, 410, or disabled."
    )
    last_status_code: int | None = Field(
        default=None, description="HTTP status of the latest attempt; null if it got none."
    )
    last_error: str | None = Field(
        default=None, max_length=2000, description="Why the latest failed attempt failed."
    )
    last_attempt_at: AwareDatetime | None = None
    last_success_at: AwareDatetime | None = None
    last_failure_at: AwareDatetime | None = None
    failing_since: AwareDatetime | None = Field(
        default=None, description="The first failed attempt after the last success."
    )
