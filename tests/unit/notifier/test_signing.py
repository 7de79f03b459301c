"""Standard Webhooks signing (services/notifier/signing.py): the specification's test vector,
every produced message checked by the `standardwebhooks` library and by a hand-written HMAC,
secret rotation, and the verifier the demo receiver uses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from schemas.alert import Alert
from schemas.webhook import AlertBatchMessage, AlertMessage
from services.notifier.signing import (
    BATCH_EVENT_TYPE,
    USER_AGENT,
    NoActiveSecretError,
    VerificationError,
    batch_body,
    batch_id,
    message,
    secret_key,
    sign,
    signature_header,
    verify,
    webhook_body,
    webhook_headers,
)
from tests.unit.notifier.builders import SECRET_A, SECRET_B, T0, make_alert, make_secret

# The test vector of the Standard Webhooks specification and of its reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SPEC_NOW = datetime.fromtimestamp(SPEC_TIMESTAMP, tz=UTC)


def _now() -> datetime:
    # The standardwebhooks library checks the timestamp against the real clock.
    return datetime.now(UTC)


def _hand_hmac(secret: str, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """The signature computed from the specification's words, sharing no code with signing.py."""
    key = base64.b64decode(secret[len("whsec_") :])
    return hmac.new(
        key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, "sha256"
    ).digest()


def _hand_check(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    expected = _hand_hmac(secret, headers["webhook-id"], headers["webhook-timestamp"], body)
    return any(
        hmac.compare_digest(base64.b64decode(entry.removeprefix("v1,")), expected)
        for entry in headers["webhook-signature"].split(" ")
        if entry.startswith("v1,")
    )


# --- the specification's test vector ---------------------------------------------------------


def test_sign_reproduces_the_specification_test_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD) == SPEC_SIGNATURE


def test_the_reference_library_agrees_on_the_test_vector() -> None:
    # Guards the vector itself: if this fails, the constant above is wrong, not signing.py.
    reference = Webhook(SPEC_SECRET).sign(SPEC_MSG_ID, SPEC_NOW, SPEC_PAYLOAD.decode())
    assert reference == SPEC_SIGNATURE


def test_verify_accepts_the_specification_test_vector() -> None:
    headers = {
        "webhook-id": SPEC_MSG_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    verify(SPEC_SECRET, SPEC_PAYLOAD, headers, now=SPEC_NOW)


def test_hand_written_hmac_matches_the_test_vector() -> None:
    digest = _hand_hmac(SPEC_SECRET, SPEC_MSG_ID, str(SPEC_TIMESTAMP), SPEC_PAYLOAD)
    assert "v1," + base64.b64encode(digest).decode() == SPEC_SIGNATURE


# --- the body --------------------------------------------------------------------------------


def test_body_is_the_alert_created_envelope_of_the_alert() -> None:
    alert = make_alert()
    message = json.loads(webhook_body(alert))
    assert list(message) == ["type", "timestamp", "data"]
    assert message["type"] == "alert.created"
    assert message["timestamp"] == "2023-04-15T09:30:01Z"
    assert Alert.model_validate(message["data"]) == alert


def test_body_is_compact_utf8_json() -> None:
    body = webhook_body(make_alert())
    compact = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
    assert body == compact.encode("utf-8")
    assert "李尚福".encode() in body  # not \u escapes


@settings(max_examples=200, deadline=None)
@given(title=st.text(min_size=1, max_size=60).filter(lambda t: "\x00" not in t and t.strip()))
def test_body_is_compact_utf8_json_whatever_the_title(title: str) -> None:
    try:
        alert = make_alert(title=title)
    except ValidationError:
        assume(False)  # a title the contract refuses never reaches the notifier
    body = webhook_body(alert)
    envelope = json.loads(body)
    assert envelope["data"]["article"]["title"] == alert.article.title
    compact = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    assert body == compact.encode("utf-8")


def test_body_is_byte_identical_on_every_retry() -> None:
    alert = make_alert()
    assert webhook_body(alert) == webhook_body(alert.model_copy())


def test_body_timestamp_is_written_in_utc() -> None:
    cest = timezone(timedelta(hours=2))
    body = webhook_body(make_alert(), datetime(2023, 4, 15, 11, 30, 0, 250000, tzinfo=cest))
    assert json.loads(body)["timestamp"] == "2023-04-15T09:30:00.250000Z"


def test_body_refuses_a_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="timezone"):
        webhook_body(make_alert(), datetime(2023, 4, 15, 9, 30))  # noqa: DTZ001


# --- headers, checked by the reference library and by hand -----------------------------------


def test_headers_name_the_alert_the_time_and_the_sender() -> None:
    alert = make_alert()
    now = T0 + timedelta(seconds=10, microseconds=900_000)
    headers = webhook_headers([make_secret()], alert.alert_id, webhook_body(alert), now)
    assert headers["webhook-id"] == alert.alert_id
    assert headers["webhook-timestamp"] == str(int(T0.timestamp()) + 10)  # whole seconds, down
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == USER_AGENT == "newsalert-webhooks/1"
    assert headers["webhook-signature"].startswith("v1,")


def test_retries_keep_the_id_and_sign_their_own_timestamp() -> None:
    alert = make_alert()
    body = webhook_body(alert)
    first = webhook_headers([make_secret()], alert.alert_id, body, T0)
    retry = webhook_headers([make_secret()], alert.alert_id, body, T0 + timedelta(seconds=30))
    assert first["webhook-id"] == retry["webhook-id"] == alert.alert_id
    assert first["webhook-timestamp"] != retry["webhook-timestamp"]
    assert first["webhook-signature"] != retry["webhook-signature"]


def test_a_delivery_verifies_with_standardwebhooks_and_by_hand() -> None:
    alert = make_alert()
    body = webhook_body(alert)
    headers = webhook_headers([make_secret()], alert.alert_id, body, _now())
    assert Webhook(SECRET_A).verify(body, headers) == json.loads(body)
    assert _hand_check(SECRET_A, body, headers)
    verify(SECRET_A, body, headers, now=_now())


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=24, max_size=64),
    title=st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=80),
    article_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,40}", fullmatch=True),
)
def test_every_delivery_verifies_with_standardwebhooks_and_by_hand(
    key: bytes, title: str, article_id: str
) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    alert = make_alert(title=title, article_id=article_id)
    body = webhook_body(alert)
    headers = webhook_headers([make_secret(secret)], alert.alert_id, body, _now())
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    assert _hand_check(secret, body, headers)
    verify(secret, body, headers, now=_now())


def test_standardwebhooks_rejects_a_tampered_delivery() -> None:
    alert = make_alert()
    body = webhook_body(alert)
    headers = webhook_headers([make_secret()], alert.alert_id, body, _now())
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_A).verify(body.replace(b"high", b"info"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_B).verify(body, headers)


# --- rotation --------------------------------------------------------------------------------


def test_during_rotation_both_secrets_sign_newest_first() -> None:
    old = make_secret(SECRET_A, created_at=T0, expires_at=T0 + timedelta(days=2))
    new = make_secret(SECRET_B, created_at=T0 + timedelta(days=1))
    now = T0 + timedelta(days=1, hours=1)
    header = signature_header([old, new], "msg_1", 1700000000, b"{}", now)
    assert header.split(" ") == [
        sign(SECRET_B, "msg_1", 1700000000, b"{}"),
        sign(SECRET_A, "msg_1", 1700000000, b"{}"),
    ]


def test_during_rotation_old_and_new_secret_both_verify() -> None:
    now = _now()
    old = make_secret(
        SECRET_A, created_at=now - timedelta(days=3), expires_at=now + timedelta(days=1)
    )
    new = make_secret(SECRET_B, created_at=now - timedelta(hours=1))
    alert = make_alert()
    body = webhook_body(alert)
    headers = webhook_headers([old, new], alert.alert_id, body, now)
    for secret in (SECRET_A, SECRET_B):
        assert Webhook(secret).verify(body, headers) == json.loads(body)
        assert _hand_check(secret, body, headers)
        verify(secret, body, headers, now=now)


def test_an_expired_secret_no_longer_signs() -> None:
    now = _now()
    old = make_secret(SECRET_A, created_at=now - timedelta(days=3), expires_at=now)
    new = make_secret(SECRET_B, created_at=now - timedelta(days=2))
    alert = make_alert()
    body = webhook_body(alert)
    headers = webhook_headers([old, new], alert.alert_id, body, now)
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert Webhook(SECRET_B).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_A).verify(body, headers)
    assert not _hand_check(SECRET_A, body, headers)


def test_no_unexpired_secret_refuses_to_sign() -> None:
    expired = make_secret(SECRET_A, created_at=T0, expires_at=T0 + timedelta(hours=1))
    with pytest.raises(NoActiveSecretError):
        signature_header([expired], "msg_1", 1, b"{}", T0 + timedelta(hours=2))


# --- secrets ---------------------------------------------------------------------------------


def test_secret_key_is_the_decoded_base64_after_the_prefix() -> None:
    assert secret_key(SECRET_A) == bytes(range(32))
    assert len(secret_key(SPEC_SECRET)) == 24


def test_secret_key_accepts_unpadded_base64_like_the_reference_library() -> None:
    padded = "whsec_" + base64.b64encode(b"x" * 25).decode()
    assert padded.endswith("=")
    assert secret_key(padded.rstrip("=")) == b"x" * 25


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "whsec_****"])
def test_secret_key_refuses_what_is_not_base64(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        secret_key(secret)


# --- verify ----------------------------------------------------------------------------------


def _signed(now: datetime = T0) -> tuple[bytes, dict[str, str]]:
    alert = make_alert()
    body = webhook_body(alert)
    return body, webhook_headers([make_secret()], alert.alert_id, body, now)


def test_verify_accepts_its_own_messages_and_the_reference_library_signatures() -> None:
    body, headers = _signed()
    verify(SECRET_A, body, headers, now=T0)
    reference = Webhook(SECRET_A).sign(headers["webhook-id"], T0, body.decode())
    verify(SECRET_A, body, {**headers, "webhook-signature": reference}, now=T0)


def test_verify_matches_header_names_case_insensitively() -> None:
    body, headers = _signed()
    verify(SECRET_A, body, {k.title(): v for k, v in headers.items()}, now=T0)


def test_verify_refuses_a_changed_body() -> None:
    body, headers = _signed()
    with pytest.raises(VerificationError, match="no matching signature"):
        verify(SECRET_A, body + b" ", headers, now=T0)


def test_verify_refuses_another_secret() -> None:
    body, headers = _signed()
    with pytest.raises(VerificationError, match="no matching signature"):
        verify(SECRET_B, body, headers, now=T0)


def test_verify_refuses_a_changed_id_or_timestamp() -> None:
    body, headers = _signed()
    with pytest.raises(VerificationError):
        verify(SECRET_A, body, {**headers, "webhook-id": "alert_other"}, now=T0)
    later = str(int(headers["webhook-timestamp"]) + 1)
    with pytest.raises(VerificationError):
        verify(SECRET_A, body, {**headers, "webhook-timestamp": later}, now=T0)


def test_verify_tolerates_five_minutes_of_skew_either_way() -> None:
    body, headers = _signed()
    verify(SECRET_A, body, headers, now=T0 + timedelta(minutes=5))
    verify(SECRET_A, body, headers, now=T0 - timedelta(minutes=5))
    with pytest.raises(VerificationError, match="too old"):
        verify(SECRET_A, body, headers, now=T0 + timedelta(minutes=5, seconds=1))
    with pytest.raises(VerificationError, match="too new"):
        verify(SECRET_A, body, headers, now=T0 - timedelta(minutes=5, seconds=1))


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_refuses_a_missing_header(missing: str) -> None:
    body, headers = _signed()
    del headers[missing]
    with pytest.raises(VerificationError, match="missing"):
        verify(SECRET_A, body, headers, now=T0)


@pytest.mark.parametrize("timestamp", ["1681551000.5", "-1681551000", "soon", "１２３"])
def test_verify_refuses_a_timestamp_that_is_not_integer_seconds(timestamp: str) -> None:
    body, headers = _signed()
    with pytest.raises(VerificationError, match="integer seconds"):
        verify(SECRET_A, body, {**headers, "webhook-timestamp": timestamp}, now=T0)


def test_verify_skips_unknown_versions_and_garbled_entries() -> None:
    body, headers = _signed()
    good = headers["webhook-signature"]
    noisy = f"v1a,AAAA v1,@@not-base64@@ nonsense {good}"
    verify(SECRET_A, body, {**headers, "webhook-signature": noisy}, now=T0)
    with pytest.raises(VerificationError):
        verify(SECRET_A, body, {**headers, "webhook-signature": "v2," + good[3:]}, now=T0)


def test_signature_is_hmac_sha256_of_id_timestamp_body() -> None:
    key = secret_key(SECRET_A)
    digest = hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()
    assert sign(SECRET_A, "msg_1", 1700000000, b"{}") == "v1," + base64.b64encode(digest).decode()


# -- batches: several alerts in one message ---------------------------------------------------


def _alerts(count: int) -> list[Alert]:
    return [make_alert(article_id=f"art-{n}") for n in range(count)]


def test_a_batch_message_holds_its_alerts_as_single_messages_would() -> None:
    alerts = _alerts(3)
    msg_id, body = message(alerts, batched=True)

    payload = json.loads(body)
    assert payload["type"] == BATCH_EVENT_TYPE
    assert payload["timestamp"] == "2023-04-15T09:30:01Z"
    assert payload["data"]["alerts"] == [json.loads(webhook_body(a))["data"] for a in alerts]
    assert msg_id == batch_id(a.alert_id for a in alerts)


def test_a_batch_id_depends_on_which_alerts_not_their_order() -> None:
    alerts = _alerts(4)
    ids = [a.alert_id for a in alerts]

    assert batch_id(ids) == batch_id(reversed(ids))
    assert batch_id(ids) != batch_id(ids[:3])
    assert batch_id(ids).startswith("batch_")


def test_an_unbatched_message_is_one_alert_created_with_the_alert_id() -> None:
    [alert] = _alerts(1)

    assert message([alert], batched=False) == (alert.alert_id, webhook_body(alert))
    with pytest.raises(ValueError, match="one alert, not 2"):
        message(_alerts(2), batched=False)


def test_a_batch_of_one_keeps_the_batch_shape() -> None:
    [alert] = _alerts(1)
    msg_id, body = message([alert], batched=True)

    assert msg_id != alert.alert_id
    assert json.loads(body)["data"]["alerts"] == [json.loads(webhook_body(alert))["data"]]


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one alert"):
        batch_body([])


def test_a_signed_batch_verifies_with_the_standardwebhooks_library() -> None:
    msg_id, body = message(_alerts(5), batched=True)
    headers = webhook_headers([make_secret()], msg_id, body, datetime.now(UTC))

    payload = Webhook(SECRET_A).verify(body, headers)

    assert [a["article"]["article_id"] for a in payload["data"]["alerts"]] == [
        f"art-{n}" for n in range(5)
    ]


def test_the_bodies_sent_are_the_webhook_contracts() -> None:
    alerts = _alerts(3)

    single = AlertMessage.model_validate_json(webhook_body(alerts[0]))
    batch = AlertBatchMessage.model_validate_json(message(alerts, batched=True)[1])

    assert single.data == alerts[0]
    assert single.timestamp == alerts[0].matched_at
    assert batch.data.alerts == alerts
    assert batch.timestamp == max(a.matched_at for a in alerts)
