"""Committing offsets while records finish out of order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.common.offsets import OffsetTracker


def test_nothing_past_a_record_in_flight_is_committed() -> None:
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.start("p", offset)
    tracker.finish("p", 7)
    tracker.finish("p", 6)
    assert tracker.committable() == {"p": 5}
    tracker.finish("p", 5)
    assert tracker.committable() == {"p": 8}
    assert tracker.committable() == {}


def test_a_record_with_several_deliveries_is_done_after_the_last() -> None:
    tracker = OffsetTracker()
    tracker.start("p", 0, refs=2)
    tracker.finish("p", 0)
    assert tracker.committable() == {"p": 0}
    tracker.finish("p", 0)
    assert tracker.committable() == {"p": 1}


def test_a_record_with_no_work_is_committable_at_once() -> None:
    tracker = OffsetTracker()
    tracker.start("p", 3, refs=0)
    assert tracker.committable() == {"p": 4}
    assert tracker.in_flight() == 0


@given(st.permutations(list(range(20))), st.integers(min_value=0, max_value=20))
def test_the_commit_never_passes_an_unfinished_record(order: list[int], finished: int) -> None:
    tracker = OffsetTracker()
    for offset in range(20):
        tracker.start("p", offset)
    done = set(order[:finished])
    for offset in order[:finished]:
        tracker.finish("p", offset)
    committed = tracker.committable().get("p", 0)
    assert all(offset in done for offset in range(committed))
    assert committed == 20 or committed not in done
