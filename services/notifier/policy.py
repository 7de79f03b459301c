"""Webhook retry policy: what an attempt's result means, and how long to wait. No I/O.

Classification (`classify`)
---------------------------
* 2xx: delivered. A 2xx wins even when reading the rest of the response then failed: the
  receiver has accepted the message, and sending it again would only duplicate it.
* 410 Gone: the receiver says the endpoint is gone for good; the service disables the
  subscription and stops retrying (Standard Webhooks and Svix do the same).
* Every other answer is retried: 3xx, 408, 425, 429, 5xx, and the other 4xx too, as are
  timeouts, connection errors and malformed responses (no status at all).

  Redirects are not followed, because the target of a redirect has not passed the SSRF check
  the subscription's URL passed; a redirect is a failure, but a retryable one, since it
  usually means a moved or half-configured endpoint its owner can fix within the schedule.
  Other 4xx (401 after the receiver rotated its own credentials, 404 while a deploy is under
  way, 400 from a receiver's bug) are retried for the same reason, as Svix does: giving up
  at once would lose alerts to a fault the owner fixes in minutes, while retrying costs at
  most the schedule's few requests, and endpoint health disables an endpoint that never
  recovers.

An attempt is `failed` (not `retry`) only when the schedule is exhausted: see `decide`.

Schedule (`RetrySchedule`)
--------------------------
`delays_s[n - 1]` is the wait after failed attempt `n`, so a schedule of 7 delays allows 8
attempts. Each wait is scaled by a random factor in `[1 - jitter, 1 + jitter]` so that the
alerts of one outage do not come back as one burst, then raised to the receiver's
`Retry-After` if that asks for longer (capped at `RETRY_AFTER_CAP_S`, so that a receiver
cannot park a delivery for days; the schedule's own steps still apply after it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from schemas.delivery import OutcomeKind

# The default schedule of issue 6; `NEWSALERT_RETRY_SCHEDULE_S` overrides it in the services.
DEFAULT_DELAYS_S: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 10800)
DEFAULT_JITTER = 0.1
RETRY_AFTER_CAP_S = 3600.0


def classify(status: int | None, error: str | None = None) -> OutcomeKind:
    """What one attempt came to: `delivered`, `gone`, or `retry` (see the module docstring).

    `status` is the HTTP status, or None when no response arrived (timeout, connection
    error, ...), in which case `error` says why. The error does not change the verdict:
    every attempt without a usable answer is retried, whatever went wrong.
    """
    if status is not None and 200 <= status <= 299:
        return OutcomeKind.DELIVERED
    if status == 410:
        return OutcomeKind.GONE
    return OutcomeKind.RETRY


def parse_retry_after(
    value: str | None, now: datetime, cap_s: float = RETRY_AFTER_CAP_S
) -> float | None:
    """Seconds a `Retry-After` header asks to wait, from `now`, at most `cap_s`.

    Both forms of RFC 9110: delta-seconds (`120`) and an HTTP-date (`Wed, 21 Oct 2015
    07:28:00 GMT`; a date in the past means 0). Anything else, including negative or
    fractional numbers, is None: a garbled header must not stall or speed up a delivery.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        # More digits than the cap can need is the cap (and int() of thousands of digits
        # raises: an endpoint must not be able to make settling fail).
        return cap_s if len(text) > 15 else min(float(int(text)), cap_s)
    try:
        when = parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # parsedate_to_datetime leaves asctime dates and `-0000` naive; HTTP-dates are GMT.
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), cap_s)


@dataclass(frozen=True)
class Decision:
    """What to do after one attempt: its recorded outcome, and the wait before the next one."""

    outcome: OutcomeKind
    delay_s: float | None = None  # set exactly when outcome is `retry`


class RetrySchedule:
    """Delays between attempts, with jitter and `Retry-After`; tests pass a compressed one."""

    def __init__(
        self,
        delays_s: Sequence[float] = DEFAULT_DELAYS_S,
        jitter: float = DEFAULT_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        """`delays_s` may be empty (one attempt, no retries); `jitter` is in [0, 1]."""
        if any(d < 0 for d in delays_s):
            raise ValueError("retry delays must not be negative")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must be in [0, 1]")
        self.delays_s: tuple[float, ...] = tuple(float(d) for d in delays_s)
        self.jitter = jitter
        # Jitter spreads load; it needs no unpredictability, so a seedable PRNG is right.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the first, then one per delay."""
        return len(self.delays_s) + 1

    def next_delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait after failed attempt `attempt` (1 = the first); None after the last.

        The schedule's step with jitter, or `retry_after` if that is longer.
        """
        if attempt < 1:
            raise ValueError("attempts are numbered from 1")
        if attempt > len(self.delays_s):
            return None
        step = self.delays_s[attempt - 1]
        delay = step * self._rng.uniform(1 - self.jitter, 1 + self.jitter)
        return max(delay, retry_after) if retry_after is not None else delay

    def decide(
        self,
        attempt: int,
        status: int | None,
        error: str | None = None,
        retry_after: float | None = None,
    ) -> Decision:
        """The outcome to record for attempt `attempt`, and when to retry it.

        `retry` becomes `failed` when the schedule is exhausted: the alert is dead-lettered.
        """
        kind = classify(status, error)
        if kind is not OutcomeKind.RETRY:
            return Decision(kind)
        delay = self.next_delay(attempt, retry_after)
        if delay is None:
            return Decision(OutcomeKind.FAILED)
        return Decision(OutcomeKind.RETRY, delay)
