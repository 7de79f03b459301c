"""A client's article completed into the topic's Article: id, source, receipt time. No I/O."""

from __future__ import annotations

from datetime import datetime

from schemas.article import Article, ArticleIn
from schemas.identity import article_id, source_domain


def complete_article(item: ArticleIn, received_at: datetime) -> Article:
    """The Article for `item`: its stable id (rules.md section 6) and source domain."""
    return Article(
        article_id=article_id(item.id, item.url, item.title, item.body),
        url=item.url,
        source=item.source or (source_domain(item.url) if item.url else None),
        title=item.title,
        body=item.body,
        language=item.language,
        published_at=item.published_at,
        received_at=received_at,
    )
