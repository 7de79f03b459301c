"""What a subscription's endpoint receives: the body of a Standard Webhooks message.

The notifier writes these bodies itself, straight from the alerts' JSON
(`services/notifier/signing.py`); tests/unit/notifier/test_signing.py holds what it writes to
these models, and receivers can validate against schemas/json/.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.alert import Alert
from schemas.common import AwareDatetime, Contract
from schemas.subscription import MAX_ALERTS_PER_REQUEST


class AlertMessage(Contract):
    """One alert: what a subscription taking one alert a request receives."""

    type: Literal["alert.created"] = "alert.created"
    timestamp: AwareDatetime = Field(description="When the alert was matched.")
    data: Alert


class AlertBatch(Contract):
    """The alerts of one batch message."""

    alerts: list[Alert] = Field(min_length=1, max_length=MAX_ALERTS_PER_REQUEST)


class AlertBatchMessage(Contract):
    """Several alerts: what a subscription taking more than one alert a request receives."""

    type: Literal["alert.batch"] = "alert.batch"
    timestamp: AwareDatetime = Field(description="When the newest alert in it was matched.")
    data: AlertBatch
