"""Standard Webhooks messages: the body, its signatures and headers, and verification. No I/O.

A message (https://www.standardwebhooks.com/, spec version 1) is a POST of a JSON body with

* `webhook-id`: the alert id, the same on every retry, so receivers can drop duplicates (a
  batch's id is derived from its alerts' ids; see `batch_id`);
* `webhook-timestamp`: integer Unix seconds of this attempt (receivers refuse stale ones);
* `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256>` of `id.timestamp.body`, one
  per signing secret, keyed with the bytes the `whsec_` secret's base64 part decodes to.

During a secret rotation every unexpired secret signs, so a receiver holding either the old
or the new secret verifies the message and can switch at its own pace.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.alert import Alert
from schemas.subscription import SECRET_PREFIX, SigningSecret

# The bodies are `schemas.webhook.AlertMessage` and `AlertBatchMessage`, written by hand.
EVENT_TYPE = "alert.created"
BATCH_EVENT_TYPE = "alert.batch"
BATCH_ID_PREFIX = "batch_"  # alert ids start with `alert_`
USER_AGENT = "newsalert-webhooks/1"
SIGNATURE_VERSION = "v1"
# The spec's recommended tolerance: wide enough for clock skew and queueing, narrow enough
# that a captured message cannot be replayed much later.
DEFAULT_TOLERANCE = timedelta(minutes=5)

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class NoActiveSecretError(ValueError):
    """Every secret of the subscription has expired: nothing may sign its messages."""


class VerificationError(ValueError):
    """A message failed verification; the text says why (missing header, stale, no match)."""


def _utc_iso(at: datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone")
    # `Z` rather than `+00:00`: the form pydantic writes for the alert's own timestamps.
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_body(alert: Alert, timestamp: datetime | None = None) -> bytes:
    """The message body: compact UTF-8 JSON `{"type", "timestamp", "data": <alert>}`.

    `timestamp` is when the event happened and defaults to the alert's `matched_at`, which
    keeps the body byte-identical on every retry (only the signing timestamp changes).
    """
    at = _utc_iso(alert.matched_at if timestamp is None else timestamp)
    # The alert as pydantic writes it (compact, UTF-8 text as is: titles in any script), in
    # its envelope; the same bytes as json.dumps(..., separators=(",", ":"),
    # ensure_ascii=False) of the dumped model, at a fraction of the cost of dumping it to
    # Python objects first. The signature covers exactly these bytes either way.
    head = f'{{"type":{json.dumps(EVENT_TYPE)},"timestamp":"{at}","data":'.encode()
    return head + alert.model_dump_json().encode() + b"}"


def batch_id(alert_ids: Iterable[str]) -> str:
    """The `webhook-id` of a batch: `batch_` and a digest of its alert ids, in any order.

    The same alerts give the same id: a request sent again as it was (settled again after an
    unforeseen failure) is one a receiver can drop. After a restart, or a retry, alerts
    travel in other batches, with other ids: receivers of batches deduplicate on each
    alert's `alert_id`.
    """
    digest = hashlib.sha256("\n".join(sorted(alert_ids)).encode()).hexdigest()
    return f"{BATCH_ID_PREFIX}{digest[:32]}"


def batch_body(alerts: Sequence[Alert]) -> bytes:
    """A batch message's body: `{"type": "alert.batch", "timestamp", "data": {"alerts": [...]}}`.

    The timestamp is the newest alert's `matched_at`, so the same alerts give the same bytes;
    each alert is written as in a single message. (Not the alerts topic's records as read:
    validation does not make them canonical, and what the body says must be what was
    validated.)
    """
    if not alerts:
        raise ValueError("a batch holds at least one alert")
    at = _utc_iso(max(alert.matched_at for alert in alerts))
    head = f'{{"type":{json.dumps(BATCH_EVENT_TYPE)},"timestamp":"{at}","data":{{"alerts":['
    return head.encode() + b",".join(a.model_dump_json().encode() for a in alerts) + b"]}}"


def message(alerts: Sequence[Alert], *, batched: bool) -> tuple[str, bytes]:
    """The `webhook-id` and body of one request carrying `alerts`.

    Unbatched, that is exactly one alert as an `alert.created` message; batched, any number
    (one included: a batching receiver always gets the same shape) as an `alert.batch`.
    """
    if batched:
        return batch_id(a.alert_id for a in alerts), batch_body(alerts)
    if len(alerts) != 1:
        raise ValueError(f"an unbatched message carries one alert, not {len(alerts)}")
    return alerts[0].alert_id, webhook_body(alerts[0])


def alerts_of(body: bytes) -> list[dict[str, Any]]:
    """The alerts a message body carries, as JSON objects: one, or a batch's."""
    payload = json.loads(body)
    if payload.get("type") == BATCH_EVENT_TYPE:
        alerts: list[dict[str, Any]] = payload["data"]["alerts"]
        return alerts
    return [payload["data"]]


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: its base64 part, decoded (as the spec says).

    Unpadded base64 is accepted, as the reference libraries accept it; anything that is not
    base64, or decodes to nothing, raises `ValueError` rather than signing with a weak key.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError("signing secret is not whsec_ followed by base64") from exc
    if not key:
        raise ValueError("signing secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>` for one secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def active_secrets(secrets: Iterable[SigningSecret], now: datetime) -> list[SigningSecret]:
    """Secrets not expired at `now`, newest first (receivers that try one usually try the first)."""
    live = [s for s in secrets if s.expires_at is None or s.expires_at > now]
    return sorted(live, key=lambda s: s.created_at, reverse=True)


def signature_header(
    secrets: Iterable[SigningSecret], msg_id: str, timestamp: int, body: bytes, now: datetime
) -> str:
    """The `webhook-signature` value: one signature per secret not expired at `now`.

    Raises `NoActiveSecretError` when every secret has expired: a rotated-out secret may be
    the leaked one, so signing with it anyway would defeat the rotation.
    """
    live = active_secrets(secrets, now)
    if not live:
        raise NoActiveSecretError("every signing secret of the subscription has expired")
    return " ".join(sign(s.secret.get_secret_value(), msg_id, timestamp, body) for s in live)


def webhook_headers(
    secrets: Iterable[SigningSecret], msg_id: str, body: bytes, now: datetime
) -> dict[str, str]:
    """Every header of one attempt, signed at `now` (the attempt's time, whole seconds)."""
    timestamp = math.floor(now.timestamp())
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: signature_header(secrets, msg_id, timestamp, body, now),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Check a received message as a receiver would; raise `VerificationError` if it fails.

    Header names are matched case-insensitively. The timestamp must be within `tolerance` of
    `now` either way; any one `v1` signature matching is enough, and every comparison is
    constant-time so the time taken does not reveal how much of a forged signature was right.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(HEADER_ID)
    raw_timestamp = lowered.get(HEADER_TIMESTAMP)
    signatures = lowered.get(HEADER_SIGNATURE)
    if not (msg_id and raw_timestamp and signatures):
        raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit()):
        raise VerificationError("webhook-timestamp is not integer seconds")
    timestamp = int(raw_timestamp)
    skew = now.timestamp() - timestamp
    if skew > tolerance.total_seconds():
        raise VerificationError("message timestamp too old")
    if -skew > tolerance.total_seconds():
        raise VerificationError("message timestamp too new")
    expected = base64.b64decode(sign(secret, msg_id, timestamp, body).partition(",")[2])
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != SIGNATURE_VERSION:
            continue  # a future scheme (v1a, ...) we cannot check; another entry may match
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(expected, given):
            return
    raise VerificationError("no matching signature")
