"""One article record in, its alerts and story record out: the worker's logic, free of I/O.

The faust agent hands every record value to `ArticleProcessor.process` and sends what comes
back; everything that decides anything (decoding, matching, story grouping, alert ids and
first-of-story flags) happens here, where tests reach it without a broker.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from pydantic import ValidationError

from schemas.article import Article, RejectedRecord
from schemas.story import StoryRecord
from services.common.topics import MAX_RECORD_BYTES, record_size
from services.matcher.alerts import AlertRecord, ArticleAlerts, RuleFields
from services.matcher.engine.matcher import Matcher
from services.matcher.stories import StoryIndex

MAX_REASON_CHARS = 2000
# An alert's evidence quotes every occurrence (rules.md, section 5), so an article that
# repeats a watched name tens of thousands of times raises an alert of megabytes. The notifier
# wraps an alert in a retry task or dead letter with every attempt (up to 21, and one more
# for each URL change that overtook a request; each with an error of up to 500 characters,
# escaped in JSON at worst 6 bytes each): the margin is their room, with some 16 such changes
# to spare (tests/unit/notifier/test_record_sizes.py holds the 21).
MAX_ALERT_BYTES = MAX_RECORD_BYTES - 128 * 1024
# A dead letter keeps the record's key as text; a foreign producer's key can be of any size.
MAX_KEY_CHARS = 1000
# A tenant can have any number of rules match, and all be too large: the ids a reason lists.
MAX_LISTED_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class Processed:
    """What one article record produced: a reason to dead-letter it, or alerts and a story.

    `oversized` are alerts over `MAX_ALERT_BYTES`, which no Kafka record can carry: they are
    not in `alerts`, and `reason` says which they were (the article goes to the dead-letter
    topic with it, and its other alerts go out as usual).
    """

    reason: str | None = None
    article_id: str | None = None
    alerts: list[AlertRecord] = field(default_factory=list)
    story: StoryRecord | None = None
    oversized: list[AlertRecord] = field(default_factory=list)


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
        oversized = [a for a in alerts if record_size(a.key, a.value) > MAX_ALERT_BYTES]
        reason = None
        if oversized:
            alerts = [a for a in alerts if record_size(a.key, a.value) <= MAX_ALERT_BYTES]
            # The story's next article is its first for these rules: nobody heard of it yet.
            self.stories.release_firsts(article.article_id, (a.key.decode() for a in oversized))
            reason = _left_out(oversized, produced=len(alerts))
        return Processed(
            reason=reason,
            article_id=article.article_id,
            alerts=alerts,
            story=self.stories.record(article.article_id),
            oversized=oversized,
        )


def _left_out(oversized: list[AlertRecord], produced: int) -> str:
    """Why an article is dead-lettered for alerts too large to produce, naming them."""
    head = (
        f"{len(oversized)} alert(s) left out, over the {MAX_ALERT_BYTES} bytes a Kafka record "
        f"can carry; {produced} other alert(s) of the article were produced. Left out: "
    )
    listed = "; ".join(f"{a.alert_id} ({a.key.decode()}, {len(a.value)} bytes)" for a in oversized)
    if len(head) + len(listed) <= MAX_REASON_CHARS:
        return head + listed
    ids: list[str] = []  # the ids first: the rest is detail
    room = MAX_LISTED_CHARS
    for alert in oversized:
        room -= len(alert.alert_id) + 2
        if room < 0:
            break
        ids.append(alert.alert_id)
    more = len(oversized) - len(ids)
    tail = f", and {more} more (`newsalert match` lists every alert)" if more else ""
    return head + ", ".join(ids) + tail


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The key a dead letter of a record keyed `key` is stored under: the same, cut if long."""
    return key if key is None or len(key) <= MAX_KEY_CHARS else key[:MAX_KEY_CHARS]


def rejected_record(
    message: tuple[str, int, int, bytes | None, bytes | None], reason: str, now: datetime
) -> RejectedRecord:
    """The dead letter of one consumed record: where it was, its key and value, and why.

    Args:
        message: the record's topic, partition, offset, key and value.
        reason: why it is dead-lettered.
        now: the time of rejection.

    The value is left out if the dead letter would not fit in a Kafka record with it, and
    the reason then says where to read it (for as long as that topic keeps it); a key is cut
    at `MAX_KEY_CHARS`. A dead letter Kafka refused would hold back the whole stream.
    """
    topic, partition, offset, key, value = message
    text_key = key.decode("utf-8", "replace") if key else None
    if text_key is not None and len(text_key) > MAX_KEY_CHARS:
        reason = f"{reason} (the key, {len(key or b'')} bytes, is cut)"
        text_key = text_key[:MAX_KEY_CHARS]
    rejected = RejectedRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=text_key,
        value_b64=base64.b64encode(value or b"").decode(),
        reason=reason,
        rejected_at=now,
    )
    size = record_size(dead_letter_key(key), rejected.model_dump_json().encode())
    if size <= MAX_RECORD_BYTES:
        return rejected
    left_out = (
        f"{reason} (the value, {len(value or b'')} bytes, is too large to keep here: "
        f"it is at {topic}/{partition}/{offset} while that topic keeps it)"
    )
    return rejected.model_copy(update={"value_b64": "", "reason": left_out})
