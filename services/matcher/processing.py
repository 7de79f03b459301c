"""One article record in, its alerts and story record out: the worker's logic, free of I/O.

The faust agent hands every record value to `ArticleProcessor.process` and sends what comes
back; everything that decides anything (decoding, matching, story grouping, alert ids and
first-of-story flags) happens here, where tests reach it without a broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from pydantic import ValidationError

from schemas.article import Article
from schemas.story import StoryRecord
from services.matcher.alerts import AlertRecord, ArticleAlerts, RuleFields
from services.matcher.engine.matcher import Matcher
from services.matcher.stories import StoryIndex

MAX_REASON_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Processed:
    """What one article record produced: a reason to dead-letter it, or alerts and a story."""

    reason: str | None = None
    article_id: str | None = None
    alerts: list[AlertRecord] = field(default_factory=list)
    story: StoryRecord | None = None


def describe(exc: ValidationError) -> str:
    """A validation error as one line: `field: problem; ...` (the input is never echoed)."""
    parts = [
        f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return "; ".join(parts)[:MAX_REASON_CHARS]


class ArticleProcessor:
    """Decodes, matches and groups articles; holds the story index it groups them with."""

    def __init__(self, stories: StoryIndex) -> None:
        self.stories = stories
        self.rule_fields = RuleFields()

    def process(self, raw: bytes | None, matcher: Matcher, now: datetime) -> Processed:
        """The outcome of one record of the articles topic.

        Args:
            raw: the record value (None for a tombstone, which no article topic should hold).
            matcher: the rules to evaluate, as compiled now.
            now: the time to stamp the alerts with.
        """
        if raw is None:
            return Processed(reason="the record has no value")
        try:
            article = Article.model_validate_json(raw)
        except ValidationError as exc:
            return Processed(reason=f"not a valid Article: {describe(exc)}")
        result = matcher.match(article)
        # Every article joins the story index, matched or not, so that "sources that carried
        # the story" counts every outlet, and a later copy finds the earlier one.
        story = self.stories.assign(
            article.article_id,
            article.source,
            article.received_at,
            article.title,
            article.body,
            result.scan_texts,
        )
        writer = ArticleAlerts(
            article,
            rule_fields=self.rule_fields,
            story_id=story.story_id,
            story_sources=list(story.sources),
            matched_at=now,
        )
        alerts = writer.records(result, partial(self.stories.first_for_rules, article.article_id))
        return Processed(
            article_id=article.article_id,
            alerts=alerts,
            story=self.stories.record(article.article_id),
        )
