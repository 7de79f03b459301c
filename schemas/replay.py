"""Replays: re-deliver a dead letter, or every alert of a subscription in a time range."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from schemas.common import SCHEMA_VERSION, AwareDatetime, Contract, Slug, TenantId


class ReplayIn(Contract):
    """What a client asks to replay: one dead letter (`alert_id`) or a range (`since`, `until`)."""

    subscription_id: Slug
    alert_id: str | None = Field(default=None, pattern=r"^alert_[0-9a-f]{32}$")
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        ranged = self.since is not None or self.until is not None
        if (self.alert_id is None) == (not ranged):
            raise ValueError("give either alert_id, or since and until")
        if ranged and (self.since is None or self.until is None or self.until <= self.since):
            raise ValueError("a range needs since < until")
        return self


class ReplayRequest(Contract):
    """A replay on its way to the notifier (the replays topic), for the caller's tenant."""

    schema_version: Literal[1] = SCHEMA_VERSION
    replay_id: str = Field(pattern=r"^replay_[0-9a-f]{32}$")
    tenant: TenantId
    subscription_id: Slug
    alert_id: str | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    requested_at: AwareDatetime


class ReplayAccepted(Contract):
    """The API's answer: the replay is queued; deliveries follow with fresh signatures."""

    replay_id: str
