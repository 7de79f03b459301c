"""Webhook retry policy (services/notifier/policy.py): which answers are retried, the schedule
with its jitter, Retry-After in both forms, and exhaustion."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.delivery import OutcomeKind
from services.common.settings import KafkaSettings
from services.notifier.policy import (
    DEFAULT_DELAYS_S,
    RETRY_AFTER_CAP_S,
    Decision,
    RetrySchedule,
    classify,
    parse_retry_after,
)

NOW = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
DELIVERED, RETRY, GONE, FAILED = (
    OutcomeKind.DELIVERED,
    OutcomeKind.RETRY,
    OutcomeKind.GONE,
    OutcomeKind.FAILED,
)

# --- classification --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (200, None, DELIVERED),
        (201, None, DELIVERED),
        (202, None, DELIVERED),
        (204, None, DELIVERED),
        (299, None, DELIVERED),
        (200, "timeout reading the response body", DELIVERED),  # the receiver accepted it
        (410, None, GONE),
        # redirects are not followed (SSRF) but may be fixed: retried
        (301, None, RETRY),
        (302, None, RETRY),
        (304, None, RETRY),
        (307, None, RETRY),
        (308, None, RETRY),
        # 4xx: all retried like Svix, except 410
        (400, None, RETRY),
        (401, None, RETRY),
        (403, None, RETRY),
        (404, None, RETRY),
        (405, None, RETRY),
        (408, None, RETRY),
        (409, None, RETRY),
        (413, None, RETRY),
        (422, None, RETRY),
        (425, None, RETRY),
        (429, None, RETRY),
        (499, None, RETRY),
        (500, None, RETRY),
        (502, None, RETRY),
        (503, None, RETRY),
        (504, None, RETRY),
        (599, None, RETRY),
        (None, "timeout after 10 s", RETRY),
        (None, "connection refused", RETRY),
        (None, "TLS handshake failed", RETRY),
        (None, None, RETRY),
    ],
)
def test_classify_table(status: int | None, error: str | None, expected: OutcomeKind) -> None:
    assert classify(status, error) is expected


@given(st.integers(min_value=100, max_value=599))
def test_classify_delivers_exactly_the_2xx_and_gives_up_only_on_410(status: int) -> None:
    outcome = classify(status, None)
    if 200 <= status <= 299:
        assert outcome is DELIVERED
    elif status == 410:
        assert outcome is GONE
    else:
        assert outcome is RETRY


# --- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("120", 120.0),
        ("  120 ", 120.0),
        ("3600", 3600.0),
        ("7200", RETRY_AFTER_CAP_S),  # capped
        ("99999999999999999999999", RETRY_AFTER_CAP_S),
    ],
)
def test_retry_after_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_a_retry_after_of_thousands_of_digits_is_the_cap_not_an_error() -> None:
    # int() refuses strings of over 4,300 digits; an endpoint must not make settling fail.
    assert parse_retry_after("9" * 5000, NOW) == RETRY_AFTER_CAP_S


def test_retry_after_http_date_in_the_future() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", NOW) == 90.0


def test_retry_after_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", NOW) == 0.0


def test_retry_after_http_date_far_ahead_is_capped() -> None:
    assert parse_retry_after("Thu, 22 Oct 2015 07:28:00 GMT", NOW) == RETRY_AFTER_CAP_S


@pytest.mark.parametrize(
    "value",
    [
        "Wednesday, 21-Oct-15 07:29:00 GMT",  # RFC 850, obsolete but allowed
        "Wed Oct 21 07:29:00 2015",  # asctime, no zone: GMT by definition
    ],
)
def test_retry_after_obsolete_date_forms(value: str) -> None:
    assert parse_retry_after(value, NOW) == 60.0


def test_retry_after_cap_is_configurable() -> None:
    assert parse_retry_after("600", NOW, cap_s=60) == 60.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "-5", "1.5", "1e3", "12abc", "١٢", "Wed, 32 Oct 2015 07:29:00 GMT"],
)
def test_retry_after_garbage_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


# --- the schedule ----------------------------------------------------------------------------


def test_default_schedule_is_the_issue_schedule_and_the_settings_default() -> None:
    assert DEFAULT_DELAYS_S == (5, 30, 120, 600, 1800, 3600, 10800)
    assert tuple(KafkaSettings.model_fields["retry_schedule_s"].default) == DEFAULT_DELAYS_S
    assert RetrySchedule().max_attempts == 8


@given(seed=st.integers(), attempt=st.integers(min_value=1, max_value=len(DEFAULT_DELAYS_S)))
def test_jitter_stays_within_its_bounds(seed: int, attempt: int) -> None:
    schedule = RetrySchedule(jitter=0.1, rng=random.Random(seed))
    step = DEFAULT_DELAYS_S[attempt - 1]
    delay = schedule.next_delay(attempt)
    assert delay is not None
    assert step * 0.9 <= delay <= step * 1.1


def test_jitter_spreads_the_delays_over_its_range() -> None:
    schedule = RetrySchedule([100], jitter=0.2, rng=random.Random(7))
    delays = [schedule.next_delay(1) for _ in range(2000)]
    assert all(d is not None and 80 <= d <= 120 for d in delays)
    assert min(d for d in delays if d is not None) < 82
    assert max(d for d in delays if d is not None) > 118
    assert len(set(delays)) > 1900


def test_full_jitter_ranges_from_nothing_to_twice_the_step() -> None:
    schedule = RetrySchedule([10], jitter=1.0, rng=random.Random(5))
    delays = [schedule.next_delay(1) for _ in range(500)]
    assert all(d is not None and 0 <= d <= 20 for d in delays)


def test_without_jitter_the_schedule_is_exact() -> None:
    schedule = RetrySchedule([0.01, 0.02, 0.04], jitter=0)
    assert [schedule.next_delay(n) for n in (1, 2, 3)] == [0.01, 0.02, 0.04]


def test_schedule_is_exhausted_after_its_last_step() -> None:
    schedule = RetrySchedule([1, 2, 3], jitter=0)
    assert schedule.max_attempts == 4
    assert schedule.next_delay(3) == 3
    assert schedule.next_delay(4) is None
    assert schedule.next_delay(50) is None


def test_an_empty_schedule_allows_one_attempt() -> None:
    schedule = RetrySchedule([], jitter=0)
    assert schedule.max_attempts == 1
    assert schedule.next_delay(1) is None


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        RetrySchedule().next_delay(0)


def test_a_longer_retry_after_wins_over_the_step() -> None:
    schedule = RetrySchedule([5, 30], jitter=0.1, rng=random.Random(1))
    assert schedule.next_delay(1, retry_after=120) == 120


def test_a_shorter_retry_after_does_not_shorten_the_step() -> None:
    schedule = RetrySchedule([30], jitter=0)
    assert schedule.next_delay(1, retry_after=2) == 30


def test_retry_after_does_not_extend_an_exhausted_schedule() -> None:
    assert RetrySchedule([5], jitter=0).next_delay(2, retry_after=60) is None


@pytest.mark.parametrize(("delays", "jitter"), [([5, -1], 0.1), ([5], -0.1), ([5], 1.5)])
def test_invalid_schedules_are_refused(delays: list[float], jitter: float) -> None:
    with pytest.raises(ValueError, match="must"):
        RetrySchedule(delays, jitter=jitter)


# --- decide: outcome and delay together ------------------------------------------------------


def test_decide_retries_with_the_scheduled_delay() -> None:
    schedule = RetrySchedule([5, 30], jitter=0)
    assert schedule.decide(1, 503) == Decision(RETRY, 5)
    assert schedule.decide(2, None, "timeout") == Decision(RETRY, 30)


def test_decide_honours_retry_after() -> None:
    schedule = RetrySchedule([5, 30], jitter=0)
    retry_after = parse_retry_after("90", NOW)
    assert schedule.decide(1, 429, retry_after=retry_after) == Decision(RETRY, 90)


def test_decide_fails_the_last_attempt() -> None:
    schedule = RetrySchedule([5, 30], jitter=0)
    assert schedule.decide(3, 503) == Decision(FAILED)


@pytest.mark.parametrize("attempt", [1, 3])
def test_decide_never_retries_a_delivery_or_a_gone_endpoint(attempt: int) -> None:
    schedule = RetrySchedule([5, 30], jitter=0)
    assert schedule.decide(attempt, 204) == Decision(DELIVERED)
    assert schedule.decide(attempt, 410, retry_after=60) == Decision(GONE)


def test_a_compressed_schedule_walks_every_step_then_fails() -> None:
    schedule = RetrySchedule([0.001, 0.002, 0.003], jitter=0.5, rng=random.Random(3))
    decisions = [schedule.decide(n, 500) for n in range(1, 5)]
    assert [d.outcome for d in decisions] == [RETRY, RETRY, RETRY, FAILED]
    total = sum(d.delay_s or 0 for d in decisions)
    assert timedelta(seconds=total) < timedelta(seconds=0.01)
