"""Webhook delivery records: attempts, pending retries, and dead letters."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from schemas.alert import Alert
from schemas.common import SCHEMA_VERSION, AwareDatetime, Contract, Slug, TenantId


class OutcomeKind(StrEnum):
    """What one HTTP attempt came to."""

    DELIVERED = "delivered"
    RETRY = "retry"
    GONE = "gone"
    FAILED = "failed"


class DeliveryAttempt(Contract):
    """One POST of one alert to one subscription."""

    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: str
    tenant: TenantId
    subscription_id: Slug
    attempt: int = Field(ge=1, description="1 for the first try.")
    outcome: OutcomeKind
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=2000)
    duration_ms: float = Field(ge=0)
    attempted_at: AwareDatetime


class DeliveryTask(Contract):
    """An alert waiting in a retry topic for its next attempt."""

    schema_version: Literal[1] = SCHEMA_VERSION
    alert: Alert
    subscription_id: Slug
    next_attempt: int = Field(ge=1)
    not_before: AwareDatetime
    attempts: list[DeliveryAttempt] = Field(default_factory=list)


class DeadLetter(Contract):
    """An alert that exhausted its retries (or was refused), with every attempt's outcome."""

    schema_version: Literal[1] = SCHEMA_VERSION
    alert: Alert
    subscription_id: Slug
    reason: str
    attempts: list[DeliveryAttempt]
    dead_at: AwareDatetime
