"""Article intake: the one path by which any article (HTTP API or feed) reaches the topic.

An adapter: completes the article (`identity.py`), drops duplicates by id, publishes and
waits for Kafka's acknowledgement, remembers the id and counts the outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Counter

from schemas.api import ArticleReceipt, ArticleStatus
from schemas.article import ArticleIn
from services.common.kafka import encode
from services.common.topics import MAX_RECORD_BYTES, record_size
from services.ingest.identity import complete_article
from services.ingest.publisher import Publisher
from services.ingest.views import RecentArticleIds

log = logging.getLogger(__name__)


class ArticleIntake:
    """Accepts articles for publication, each id at most once within the dedupe window.

    Shared by the API routes and the feed poller, so both deduplicate against the same
    `RecentArticleIds` and count on the same `newsalert_ingest_articles_total`.
    """

    def __init__(
        self,
        publisher: Publisher,
        recent: RecentArticleIds,
        articles: Counter,
        now: Callable[[], datetime],
    ) -> None:
        """Wire the intake.

        Args:
            publisher: Publishes to the articles topic and waits for the ack.
            recent: Ids published within the dedupe window (by any instance).
            articles: `newsalert_ingest_articles_total`, labelled (outcome, reason).
            now: The clock that stamps `received_at`.
        """
        self._publisher = publisher
        self._recent = recent
        self._articles = articles
        self._now = now
        # Ids being published right now: the API and the poller run concurrently, and the same
        # article arriving twice while the first send waits for its ack is a duplicate too.
        self._publishing: dict[str, asyncio.Event] = {}

    async def accept(self, item: ArticleIn, line: int | None = None) -> ArticleReceipt:
        """Publish `item` unless its id was published within the dedupe window.

        Args:
            item: A validated article.
            line: The 1-based NDJSON line it came from, echoed in the receipt.

        Returns:
            ACCEPTED once Kafka acknowledged the record, DUPLICATE without publishing, or
            REFUSED, saying why, for an article too large for one Kafka record (which Kafka
            would refuse on every try; a feed would then never get past it).

        Raises:
            Whatever the producer raises when Kafka does not acknowledge; the id is then not
            remembered, so a later attempt publishes it.
        """
        article = complete_article(item, self._now())
        article_id = article.article_id
        while (pending := self._publishing.get(article_id)) is not None:
            await pending.wait()
        if article_id in self._recent:
            self._articles.labels("duplicate", "").inc()
            log.info("article is a duplicate", extra={"article_id": article_id})
            return ArticleReceipt(line=line, article_id=article_id, status=ArticleStatus.DUPLICATE)
        value = encode(article)
        size = record_size(article_id.encode(), value)
        if size > MAX_RECORD_BYTES:
            self.refused("too_large")
            log.warning("article too large to publish", extra={"article_id": article_id})
            error = {
                "loc": ["body"],
                "msg": f"the article is {size} bytes as a Kafka record, over the "
                f"{MAX_RECORD_BYTES} one record may take; shorten its body",
                "type": "too_large",
            }
            return ArticleReceipt(
                line=line, article_id=article_id, status=ArticleStatus.REFUSED, errors=[error]
            )
        done = self._publishing[article_id] = asyncio.Event()
        try:
            await self._publisher.publish_article(article_id, value)
            self._recent.add(article_id)
        finally:
            del self._publishing[article_id]
            done.set()
        self._articles.labels("accepted", "").inc()
        log.info("article published", extra={"article_id": article_id, "source": article.source})
        return ArticleReceipt(line=line, article_id=article_id, status=ArticleStatus.ACCEPTED)

    def refused(self, reason: str, count: int = 1) -> None:
        """Count `count` articles refused before they could be accepted (`reason`: a slug)."""
        self._articles.labels("refused", reason).inc(count)
