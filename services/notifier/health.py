"""Endpoint health: per subscription, how deliveries go and when to give up on it. No I/O.

A subscription whose endpoint has failed every attempt for `DEFAULT_DISABLE_AFTER` (5 days)
is disabled, as Svix does: after that long the endpoint is abandoned rather than down, and
retrying every alert against it only costs both sides. The service records each attempt's
outcome here, asks `should_disable` after a failure, and publishes `status()` for the API.

Attempts of one subscription finish out of order (the first attempt of a new alert and the
fifth retry of an old one run side by side, on different topics), so `record` does not
assume time order. `failing_since` is the first failure after the latest success when the
records arrive in order; out of order it can only come out later than that, never earlier,
so a late record may delay disabling but never disables an endpoint early.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.delivery import OutcomeKind
from schemas.health import EndpointState, EndpointStatus

DEFAULT_DISABLE_AFTER = timedelta(days=5)
ERROR_MAX_CHARS = 2000  # the contract's limit on `last_error`


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("attempt times must carry a timezone")
    return at


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


@dataclass
class EndpointHealth:
    """The running delivery record of one subscription's endpoint."""

    tenant: str
    subscription_id: str
    delivered: int = 0
    failed_attempts: int = 0
    dead_letters: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    # Invariant: None, or a failure time later than `last_success_at`.
    failing_since: datetime | None = None

    def record(
        self,
        outcome: OutcomeKind,
        at: datetime,
        error: str | None = None,
        status_code: int | None = None,
    ) -> None:
        """Count one attempt made at `at`.

        `failed` and `gone` attempts also count a dead letter: each ends its alert's delivery.
        """
        _aware(at)
        if self.last_attempt_at is None or at >= self.last_attempt_at:
            self.last_attempt_at = at
            self.last_status_code = status_code
        if outcome is OutcomeKind.DELIVERED:
            self._succeeded(at)
            return
        self.failed_attempts += 1
        if outcome in (OutcomeKind.FAILED, OutcomeKind.GONE):
            self.dead_letters += 1
        if self.last_failure_at is None or at >= self.last_failure_at:
            self.last_failure_at = at
            reason = error or (f"HTTP {status_code}" if status_code is not None else "no response")
            self.last_error = reason[:ERROR_MAX_CHARS]
        # A failure older than a success already seen is not part of the current streak.
        if self.last_success_at is None or at > self.last_success_at:
            self.failing_since = at if self.failing_since is None else min(self.failing_since, at)

    def _succeeded(self, at: datetime) -> None:
        self.delivered += 1
        self.last_success_at = _later(self.last_success_at, at)
        if self.failing_since is not None and self.failing_since <= self.last_success_at:
            # The streak is broken. Failures after this success may already have been seen;
            # the latest of them is a safe (late) start for the new streak, since the
            # earliest is no longer known.
            last_failure = self.last_failure_at
            keep = last_failure is not None and last_failure > self.last_success_at
            self.failing_since = last_failure if keep else None

    def since(self, changed_at: datetime) -> None:
        """Count the failing streak from `changed_at` at the earliest: when its tenant last
        changed the subscription (a new URL; enabled again after a fix). Failures before were
        another endpoint's, or before the fix, and must not disable it. The counts stay."""
        _aware(changed_at)
        if self.failing_since is None or self.failing_since >= changed_at:
            return
        if self.last_failure_at is None or self.last_failure_at < changed_at:
            self.failing_since = None
        else:  # no success since the streak began: every attempt since the change failed
            self.failing_since = changed_at

    def record_dead_letter(self) -> None:
        """Count an alert given up on without an attempt (its subscription went away)."""
        self.dead_letters += 1

    @property
    def failing(self) -> bool:
        """True when every attempt since `failing_since` failed."""
        return self.failing_since is not None

    def should_disable(self, after: timedelta = DEFAULT_DISABLE_AFTER) -> bool:
        """True when failed attempts span at least `after` with no success in between.

        Measured to the latest failure rather than to the clock: an endpoint that failed once
        and then saw no traffic for a week is not known to be down, and is given its next
        alert; if that fails too, it is disabled then.
        """
        if self.failing_since is None or self.last_failure_at is None:
            return False
        return self.last_failure_at - self.failing_since >= after

    def disable_reason(self) -> str:
        """Why `should_disable` said so, for the subscription's `disabled_reason`."""
        since = self.failing_since.isoformat() if self.failing_since is not None else "?"
        return (
            f"every delivery attempt failed since {since} "
            f"({self.failed_attempts} failed attempts); last error: {self.last_error}"
        )

    def status(self) -> EndpointStatus:
        """A snapshot as the `EndpointStatus` contract (for the API and a compacted topic)."""
        return EndpointStatus(
            tenant=self.tenant,
            subscription_id=self.subscription_id,
            state=EndpointState.FAILING if self.failing else EndpointState.HEALTHY,
            delivered=self.delivered,
            failed_attempts=self.failed_attempts,
            dead_letters=self.dead_letters,
            last_status_code=self.last_status_code,
            last_error=self.last_error,
            last_attempt_at=self.last_attempt_at,
            last_success_at=self.last_success_at,
            last_failure_at=self.last_failure_at,
            failing_since=self.failing_since,
        )

    @classmethod
    def from_status(cls, status: EndpointStatus) -> EndpointHealth:
        """The record a snapshot was taken of (to carry on after a restart)."""
        return cls(
            tenant=status.tenant,
            subscription_id=status.subscription_id,
            delivered=status.delivered,
            failed_attempts=status.failed_attempts,
            dead_letters=status.dead_letters,
            last_status_code=status.last_status_code,
            last_error=status.last_error,
            last_attempt_at=status.last_attempt_at,
            last_success_at=status.last_success_at,
            last_failure_at=status.last_failure_at,
            failing_since=status.failing_since,
        )
