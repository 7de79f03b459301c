"""The dead-letter topic as a view: what was given up on, per tenant and subscription.

Ingest lists dead letters through its API; the notifier finds the one a replay names. Both
read the whole topic (it keeps four weeks) and follow it.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from schemas.delivery import DeadLetter
from services.common.follower import TopicFollower

log = logging.getLogger(__name__)


class DeadLetterView(TopicFollower):
    """(tenant, subscription id, alert id) -> the latest dead letter."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self._letters: dict[tuple[str, str, str], DeadLetter] = {}

    async def _seek_start(self, consumer: Any, partitions: list[Any]) -> None:
        await consumer.seek_to_beginning(*partitions)

    def _absorb(self, record: Any) -> None:
        try:
            letter = DeadLetter.model_validate_json(record.value or b"")
        except ValidationError as exc:
            log.warning("skipped an invalid dead letter", extra={"error": str(exc)[:500]})
            return
        self.add(letter)

    def add(self, letter: DeadLetter) -> None:
        """Remember a dead letter (also used for the ones this process writes)."""
        key = (letter.alert.tenant, letter.subscription_id, letter.alert.alert_id)
        self._letters[key] = letter

    def get(self, tenant: str, subscription_id: str, alert_id: str) -> DeadLetter | None:
        """One dead letter, or None."""
        return self._letters.get((tenant, subscription_id, alert_id))

    def listing(
        self, tenant: str, subscription_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """A tenant's dead letters, newest first, optionally of one subscription."""
        found = [
            letter
            for (owner, sub, _), letter in self._letters.items()
            if owner == tenant and (subscription_id is None or sub == subscription_id)
        ]
        found.sort(key=lambda letter: letter.dead_at, reverse=True)
        return found[:limit]
