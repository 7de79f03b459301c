"""The ids of recently published articles, rebuilt from the articles topic at start."""

from __future__ import annotations

import time
from typing import Any

from services.common.follower import TopicFollower, seek_to_time


class RecentArticleIds(TopicFollower):
    """Article ids published within the last `window_s` seconds, by any ingest instance.

    At start the articles topic is read from `now - window_s` (by timestamp) to its end;
    afterwards it is followed, so ids another instance publishes are seen too. An instance
    also records its own publishes at once. Two instances receiving the same new article
    in the same instant may both publish it; alert ids are deterministic, so receivers
    still see one alert id.
    """

    def __init__(self, bootstrap: str, topic: str, window_s: float) -> None:
        super().__init__(bootstrap, topic)
        self._window_s = window_s
        self._seen: dict[str, float] = {}
        self._last_prune = time.monotonic()

    def __contains__(self, article_id: object) -> bool:
        seen = self._seen.get(article_id) if isinstance(article_id, str) else None
        return seen is not None and seen >= time.time() - self._window_s

    def add(self, article_id: str, at: float | None = None) -> None:
        """Remember an id as published at `at` (default now)."""
        self._seen[article_id] = time.time() if at is None else at

    def _prune(self) -> None:
        horizon = time.time() - self._window_s
        for key in [k for k, t in self._seen.items() if t < horizon]:
            del self._seen[key]

    async def _seek_start(self, consumer: Any, partitions: list[Any]) -> None:
        await seek_to_time(consumer, partitions, time.time() - self._window_s)

    def _absorb(self, record: Any) -> None:
        if record.key:
            self.add(record.key.decode("utf-8", "replace"), record.timestamp / 1000)

    def _tick(self) -> None:
        if time.monotonic() - self._last_prune > 60:
            self._prune()
            self._last_prune = time.monotonic()
