"""What the notifier writes around an alert still fits in one Kafka record.

The matcher produces no alert over `MAX_ALERT_BYTES` (services/matcher/processing.py); the
notifier wraps one in a retry task or a dead letter with every attempt so far. If those
outgrew a Kafka record, the notifier could never store the outcome of that alert's delivery.
"""

from __future__ import annotations

from annotated_types import MaxLen

from schemas.alert import Alert, Evidence
from schemas.delivery import DeadLetter, DeliveryAttempt, DeliveryTask, OutcomeKind
from services.common.settings import NotifierSettings
from services.common.topics import MAX_RECORD_BYTES
from services.matcher.processing import MAX_ALERT_BYTES
from services.notifier.http import MAX_ERROR_CHARS
from tests.unit.notifier.builders import T0, make_alert

# The most attempts a delivery can carry: one per retry step, and the first.
MOST_ATTEMPTS = 1 + next(
    m.max_length
    for m in NotifierSettings.model_fields["retry_schedule_s"].metadata
    if isinstance(m, MaxLen)
)


def _largest_alert_and_attempts() -> tuple[Alert, list[DeliveryAttempt]]:
    alert = make_alert()
    span = Evidence(field="body", start=999_999, end=1_000_004, text="China")
    one = len(span.model_dump_json()) + 1
    room = MAX_ALERT_BYTES - len(alert.model_dump_json())
    alert = alert.model_copy(update={"evidence": [span] * (room // one)})
    attempt = DeliveryAttempt(
        alert_id=alert.alert_id,
        tenant=alert.tenant,
        subscription_id="desk",
        attempt=1,
        outcome=OutcomeKind.RETRY,
        status_code=None,
        # As long as the webhook client makes one, of characters JSON escapes to six bytes.
        error="\x01" * MAX_ERROR_CHARS,
        duration_ms=30_000.0,
        attempted_at=T0,
    )
    return alert, [attempt] * MOST_ATTEMPTS


def test_a_retry_task_of_the_largest_alert_with_every_attempt_fits_in_a_kafka_record() -> None:
    alert, attempts = _largest_alert_and_attempts()
    assert len(alert.model_dump_json()) > MAX_ALERT_BYTES - 1000, "as large as one gets"
    task = DeliveryTask(
        alert=alert, subscription_id="desk", next_attempt=21, not_before=T0, attempts=attempts
    )
    assert len(task.model_dump_json().encode()) + len(b"acme/desk") <= MAX_RECORD_BYTES


def test_a_dead_letter_of_the_largest_alert_with_every_attempt_fits_in_a_kafka_record() -> None:
    alert, attempts = _largest_alert_and_attempts()
    letter = DeadLetter(
        alert=alert,
        subscription_id="desk",
        reason="no success after 21 attempts; last: " + "\x01" * MAX_ERROR_CHARS,
        attempts=attempts,
        dead_at=T0,
    )
    assert len(letter.model_dump_json().encode()) + len(b"acme/desk") <= MAX_RECORD_BYTES
