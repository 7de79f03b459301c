"""Endpoint health (services/notifier/health.py): counts, the failing streak, when to disable,
records arriving out of order, and the `EndpointStatus` snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.delivery import OutcomeKind
from schemas.health import EndpointState, EndpointStatus
from services.notifier.health import DEFAULT_DISABLE_AFTER, EndpointHealth
from tests.unit.notifier.builders import T0

DELIVERED, RETRY, GONE, FAILED = (
    OutcomeKind.DELIVERED,
    OutcomeKind.RETRY,
    OutcomeKind.GONE,
    OutcomeKind.FAILED,
)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _health() -> EndpointHealth:
    return EndpointHealth(tenant="acme", subscription_id="desk")


def _fail_hourly(health: EndpointHealth, start: datetime, hours: int) -> None:
    for h in range(hours + 1):
        health.record(RETRY, start + h * HOUR, "connection refused")


def test_a_new_endpoint_is_healthy_with_nothing_counted() -> None:
    status = _health().status()
    assert status.state is EndpointState.HEALTHY
    assert (status.delivered, status.failed_attempts, status.dead_letters) == (0, 0, 0)
    assert status.last_attempt_at is None
    assert status.failing_since is None


def test_deliveries_are_counted_with_their_time() -> None:
    health = _health()
    health.record(DELIVERED, T0, status_code=200)
    health.record(DELIVERED, T0 + HOUR, status_code=204)
    assert health.delivered == 2
    assert health.last_success_at == T0 + HOUR
    assert health.last_status_code == 204
    assert not health.failing


def test_a_failure_starts_the_failing_streak_and_keeps_its_error() -> None:
    health = _health()
    health.record(DELIVERED, T0)
    health.record(RETRY, T0 + HOUR, "timeout after 10 s")
    health.record(RETRY, T0 + 2 * HOUR, None, status_code=503)
    assert health.failed_attempts == 2
    assert health.failing_since == T0 + HOUR
    assert health.last_failure_at == T0 + 2 * HOUR
    assert health.last_error == "HTTP 503"
    assert health.last_status_code == 503
    assert health.status().state is EndpointState.FAILING


def test_an_error_without_a_status_or_text_still_says_something() -> None:
    health = _health()
    health.record(RETRY, T0)
    assert health.last_error == "no response"
    assert health.last_status_code is None


def test_a_long_error_is_truncated_to_the_contract_limit() -> None:
    health = _health()
    health.record(RETRY, T0, "x" * 5000)
    assert health.last_error == "x" * 2000
    EndpointStatus.model_validate(health.status().model_dump())


def test_a_success_ends_the_streak_but_keeps_the_last_error() -> None:
    health = _health()
    health.record(RETRY, T0, "HTTP 500")
    health.record(DELIVERED, T0 + HOUR)
    assert not health.failing
    assert health.failing_since is None
    assert health.last_error == "HTTP 500"
    assert health.status().state is EndpointState.HEALTHY


def test_exhausted_and_gone_attempts_count_dead_letters() -> None:
    health = _health()
    health.record(RETRY, T0, "HTTP 500")
    health.record(FAILED, T0 + HOUR, "HTTP 500")
    health.record(GONE, T0 + 2 * HOUR, None, status_code=410)
    health.record_dead_letter()
    assert health.failed_attempts == 3
    assert health.dead_letters == 3
    assert health.last_error == "HTTP 410"


# --- disabling -------------------------------------------------------------------------------


def test_five_days_of_failures_disable_by_default() -> None:
    assert timedelta(days=5) == DEFAULT_DISABLE_AFTER
    health = _health()
    _fail_hourly(health, T0, hours=5 * 24 - 1)
    assert not health.should_disable()
    health.record(RETRY, T0 + 5 * DAY, "connection refused")
    assert health.should_disable()
    assert "every delivery attempt failed since 2023-04-15T09:30:00+00:00" in (
        health.disable_reason()
    )
    assert "connection refused" in health.disable_reason()


def test_one_success_within_the_window_prevents_disabling() -> None:
    health = _health()
    _fail_hourly(health, T0, hours=3 * 24)
    health.record(DELIVERED, T0 + 3 * DAY + HOUR)
    _fail_hourly(health, T0 + 3 * DAY + 2 * HOUR, hours=3 * 24)
    assert not health.should_disable()
    assert health.failing_since == T0 + 3 * DAY + 2 * HOUR


def test_one_failure_then_silence_is_not_five_days_of_failure() -> None:
    health = _health()
    health.record(RETRY, T0, "HTTP 502")
    assert not health.should_disable()
    # The next alert, a week later, fails too: now the failures span more than 5 days.
    health.record(RETRY, T0 + 7 * DAY, "HTTP 502")
    assert health.should_disable()


def test_the_disable_window_is_configurable() -> None:
    health = _health()
    _fail_hourly(health, T0, hours=2)
    assert not health.should_disable(after=timedelta(hours=3))
    assert health.should_disable(after=timedelta(hours=2))


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        _health().record(DELIVERED, datetime(2023, 4, 15, 9, 30))  # noqa: DTZ001


# --- records out of order --------------------------------------------------------------------


def test_an_old_failure_reported_after_a_success_starts_no_streak() -> None:
    health = _health()
    health.record(DELIVERED, T0 + HOUR)
    health.record(RETRY, T0, "HTTP 500")  # a slow retry of an older alert
    assert not health.failing
    assert health.failed_attempts == 1
    assert health.last_status_code is None  # the latest attempt is still the success


def test_an_old_success_reported_late_ends_only_the_failures_before_it() -> None:
    health = _health()
    health.record(RETRY, T0, "HTTP 500")
    health.record(RETRY, T0 + 2 * HOUR, "HTTP 500")
    health.record(DELIVERED, T0 + HOUR)
    assert health.failing_since == T0 + 2 * HOUR
    health.record(DELIVERED, T0 + 3 * HOUR)
    assert health.failing_since is None


events = st.lists(st.tuples(st.integers(0, 500), st.booleans()), max_size=30)


def _replay(items: list[tuple[int, bool]]) -> EndpointHealth:
    health = _health()
    for hour, ok in items:
        health.record(DELIVERED if ok else RETRY, T0 + hour * HOUR, None if ok else "HTTP 500")
    return health


def _true_streak_start(items: list[tuple[int, bool]]) -> int | None:
    last_success = max((h for h, ok in items if ok), default=None)
    after = [h for h, ok in items if not ok and (last_success is None or h > last_success)]
    return min(after, default=None)


@given(items=events)
def test_in_time_order_failing_since_is_the_first_failure_after_the_last_success(
    items: list[tuple[int, bool]],
) -> None:
    # Ties: a success and a failure in the same hour count the success as later.
    ordered = sorted(items, key=lambda e: (e[0], e[1]))
    start = _true_streak_start(ordered)
    expected = None if start is None else T0 + start * HOUR
    assert _replay(ordered).failing_since == expected


@given(items=events, data=st.data())
def test_out_of_order_records_never_move_the_streak_earlier(
    items: list[tuple[int, bool]], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(items))
    health = _replay(shuffled)
    start = _true_streak_start(items)
    if start is None:
        assert health.failing_since is None
    else:
        assert health.failing_since is not None
        assert health.failing_since >= T0 + start * HOUR
    assert health.delivered == sum(ok for _, ok in items)
    assert health.failed_attempts == sum(not ok for _, ok in items)


# --- the snapshot ----------------------------------------------------------------------------


def test_status_round_trips_through_json_and_back_to_health() -> None:
    health = _health()
    health.record(DELIVERED, T0, status_code=200)
    health.record(RETRY, T0 + HOUR, "HTTP 503", status_code=503)
    health.record(FAILED, T0 + 2 * HOUR, "timeout")
    status = health.status()
    assert EndpointStatus.model_validate_json(status.model_dump_json()) == status
    assert EndpointHealth.from_status(status) == health
    assert status.model_dump(mode="json") == {
        "schema_version": 1,
        "tenant": "acme",
        "subscription_id": "desk",
        "state": "failing",
        "delivered": 1,
        "failed_attempts": 2,
        "dead_letters": 1,
        "last_status_code": None,
        "last_error": "timeout",
        "last_attempt_at": "2023-04-15T11:30:00Z",
        "last_success_at": "2023-04-15T09:30:00Z",
        "last_failure_at": "2023-04-15T11:30:00Z",
        "failing_since": "2023-04-15T10:30:00Z",
    }


@pytest.mark.parametrize(
    ("failures", "changed", "streak_from"),
    [
        ([], T0, None),  # no streak to bound
        ([T0 + DAY, T0 + 2 * DAY], T0, T0 + DAY),  # the streak began after the change
        ([T0 - 2 * DAY, T0 - DAY], T0, None),  # every failure was before it
        ([T0 - 2 * DAY, T0 + DAY], T0, T0),  # across it: every attempt since it failed
    ],
)
def test_the_failing_streak_counts_from_the_subscriptions_last_change_at_the_earliest(
    failures: list[datetime], changed: datetime, streak_from: datetime | None
) -> None:
    health = _health()
    for at in failures:
        health.record(RETRY, at, "timeout")

    health.since(changed)

    assert health.failing_since == streak_from
    assert health.failed_attempts == len(failures), "the counts stay"
