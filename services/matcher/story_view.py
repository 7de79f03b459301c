"""The story index rebuilt from the stories topic, and kept in step with the other workers.

Every worker writes the story record of each article it matches; every worker follows the
whole topic from `now - window`, so a restarted worker, or one that takes over a partition,
groups new articles with copies another worker saw.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from schemas.story import StoryRecord
from services.common.follower import TopicFollower, seek_to_time
from services.matcher.stories import StoryIndex

log = logging.getLogger(__name__)


class StoryView(TopicFollower):
    """Follows the stories topic into a `StoryIndex`."""

    def __init__(self, bootstrap: str, topic: str, window: timedelta) -> None:
        super().__init__(bootstrap, topic)
        self.index = StoryIndex(window)
        self._window_s = window.total_seconds()
        self.invalid_records = 0

    async def _seek_start(self, consumer: Any, partitions: list[Any]) -> None:
        await seek_to_time(consumer, partitions, time.time() - self._window_s)

    def _absorb(self, record: Any) -> None:
        if record.value is None:
            return  # a tombstone of an evicted article: the index evicts by time itself
        try:
            story = StoryRecord.model_validate_json(record.value)
        except ValidationError as exc:
            self.invalid_records += 1
            log.warning(
                "skipped an invalid story record",
                extra={"offset": record.offset, "error": str(exc)[:500]},
            )
            return
        self.index.restore(story)
