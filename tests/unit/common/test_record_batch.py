"""The native Kafka record batch is aiokafka's, byte for byte, and aiokafka reads it back.

aiokafka's `DefaultRecordBatchBuilder` is the definition (with the defaults its `BatchBuilder`
gives it); the real broker's view is in tests/integration/test_kafka_roundtrip.py.
"""

from __future__ import annotations

import pytest
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from hypothesis import example, given, settings
from hypothesis import strategies as st
from newsalert_native import RecordBatch

Records = list[tuple[bytes | None, bytes | None]]

# Lengths on both sides of each varint width (64 and 8,192 bytes need a second and a third
# byte), tombstones and key-less records.
_data = st.one_of(
    st.none(),
    st.binary(max_size=80),
    st.integers(min_value=8100, max_value=8300).map(lambda n: (bytes(range(256)) * 33)[:n]),
)
_records = st.lists(st.tuples(_data, _data), min_size=1, max_size=40)


def _aiokafka_batch(
    records: Records, max_bytes: int, timestamp_ms: int, state: tuple[int, int, int] | None
) -> tuple[bytes, int]:
    """What aiokafka builds of the same records, and how many it took."""
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, max_bytes)
    taken = 0
    for offset, (key, value) in enumerate(records):
        if builder.append(offset, timestamp=timestamp_ms, key=key, value=value, headers=[]) is None:
            break
        taken += 1
    if state is not None:
        builder.set_producer_state(*state)
    return bytes(builder.build()), taken


def _native_batch(
    records: Records, max_bytes: int, timestamp_ms: int, state: tuple[int, int, int] | None
) -> RecordBatch:
    batch = RecordBatch([k for k, _ in records], [v for _, v in records], max_bytes, timestamp_ms)
    if state is not None:
        batch._set_producer_state(*state)
    return batch


_BYTES = bytes(range(256)) * 33


@settings(max_examples=200, deadline=None)
# A record that fills the batch exactly: aiokafka's C builder (its producer's) leaves it out.
@example(
    records=[
        (None, None),
        (None, _BYTES[:8234]),
        (None, _BYTES[:8300]),
        (b"\x00" * 9, _BYTES[:8100]),
    ],
    max_bytes=24742,
    timestamp_ms=0,
    state=None,
)
@given(
    records=_records,
    max_bytes=st.integers(min_value=0, max_value=40_000),
    timestamp_ms=st.integers(min_value=0, max_value=2**41),
    state=st.none()
    | st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**15 - 1), st.integers(0, 2**31 - 1)),
)
def test_a_native_batch_is_the_batch_aiokafka_builds_of_the_same_records(
    records: Records, max_bytes: int, timestamp_ms: int, state: tuple[int, int, int] | None
) -> None:
    expected, taken = _aiokafka_batch(records, max_bytes, timestamp_ms, state)

    batch = _native_batch(records, max_bytes, timestamp_ms, state)

    assert batch.record_count() == taken
    assert batch._build() == expected
    assert batch.size() == len(expected)


@settings(max_examples=50, deadline=None)
@given(records=_records)
def test_aiokafka_reads_back_every_record_of_a_native_batch(records: Records) -> None:
    built = _native_batch(records, 1 << 20, 1_700_000_000_000, (7, 1, 42))._build()

    batch = DefaultRecordBatch(built)

    assert batch.validate_crc()
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (7, 1, 42)
    assert [(r.key, r.value, r.timestamp) for r in batch] == [
        (k, v, 1_700_000_000_000) for k, v in records
    ]


def test_a_new_producer_state_rewrites_a_batch_already_built() -> None:
    batch = _native_batch([(b"k", b"v")], 1 << 20, 1, None)
    first = batch._build()

    batch._set_producer_state(9, 0, 5)

    assert batch._build() != first
    assert DefaultRecordBatch(batch._build()).base_sequence == 5


def test_the_first_record_is_taken_even_when_it_alone_is_over_the_size() -> None:
    batch = _native_batch([(b"k", b"x" * 100), (b"k", b"y")], 10, 1, None)

    assert batch.record_count() == 1


def test_a_record_that_is_not_bytes_is_refused_with_what_it_is() -> None:
    with pytest.raises(TypeError, match="record value must be bytes or None, not str"):
        RecordBatch([b"k"], ["text"], 1 << 20, 1)  # type: ignore[list-item]


def test_keys_and_values_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 keys for 1 values"):
        RecordBatch([b"a", b"b"], [b"v"], 1 << 20, 1)
