"""The worker's logic without a broker: records in, alerts and story records out."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.alert import Alert
from schemas.article import Article, RejectedRecord
from schemas.watchlist import RuleRecord, WatchlistRule
from services.common.kafka import encode
from services.common.topics import MAX_RECORD_BYTES, record_size
from services.matcher import processing
from services.matcher.alerts import AlertRecord, match_record
from services.matcher.engine.loading import parse_watchlist
from services.matcher.engine.matcher import Matcher
from services.matcher.processing import (
    MAX_ALERT_BYTES,
    MAX_KEY_CHARS,
    ArticleProcessor,
    Processed,
    dead_letter_key,
    rejected_record,
)
from services.matcher.ruleset import LiveRuleset, parse_rule_key
from services.matcher.stories import StoryIndex

SEEDS = Path(__file__).resolve().parents[3] / "seeds"
NOW = datetime(2023, 4, 15, 12, tzinfo=UTC)


def _seed_matcher() -> Matcher:
    loaded = parse_watchlist((SEEDS / "watchlist.yaml").read_text("utf-8"))
    matcher, errors = Matcher.build((loaded.tenant, r) for r in loaded.rules)
    assert not errors
    return matcher


def _seed_articles() -> list[Article]:
    articles = []
    for n, path in enumerate(sorted(SEEDS.glob("*.txt"))):
        title, _, body = path.read_text("utf-8").partition("\n")
        articles.append(
            Article(
                article_id=f"seed-{n}",
                source=f"outlet{n}.example",
                title=title.strip(),
                body=body,
                received_at=NOW + timedelta(minutes=n),
            )
        )
    return articles


def _alerts(outcome: Processed) -> list[Alert]:
    """The alerts as a consumer of the topic reads them: validated by the contract."""
    return [Alert.model_validate_json(record.value) for record in outcome.alerts]


def test_a_record_that_is_not_an_article_is_refused_with_the_reason() -> None:
    processor = ArticleProcessor(StoryIndex())
    matcher = _seed_matcher()
    assert "not a valid Article" in (processor.process(b"\xff{", matcher, NOW).reason or "")
    missing = processor.process(b'{"article_id": "a"}', matcher, NOW).reason or ""
    assert "received_at" in missing
    assert processor.process(None, matcher, NOW).reason == "the record has no value"


def test_alerts_carry_the_ids_the_offline_matcher_computes() -> None:
    processor = ArticleProcessor(StoryIndex())
    matcher = _seed_matcher()
    article = _seed_articles()[0]
    outcome = processor.process(article.model_dump_json().encode(), matcher, NOW)
    offline = {match_record(m, article.article_id).alert_id for m in matcher.match(article).matches}
    assert outcome.reason is None
    assert {a.alert_id for a in _alerts(outcome)} == offline
    assert {r.alert_id for r in outcome.alerts} == offline
    assert offline


def test_the_two_seed_articles_are_one_story_and_only_the_first_is_first() -> None:
    processor = ArticleProcessor(StoryIndex())
    matcher = _seed_matcher()
    first, second = (
        processor.process(a.model_dump_json().encode(), matcher, NOW) for a in _seed_articles()
    )
    assert first.story is not None
    assert second.story is not None
    assert first.story.story_id == second.story.story_id
    assert all(a.first_of_story for a in _alerts(first))
    shared = {a.rule_id for a in _alerts(first)} & {a.rule_id for a in _alerts(second)}
    assert shared
    assert not any(a.first_of_story for a in _alerts(second) if a.rule_id in shared)
    assert _alerts(second)[0].story_sources == ["outlet0.example", "outlet1.example"]


def test_a_redelivered_article_gets_the_same_alerts() -> None:
    processor = ArticleProcessor(StoryIndex())
    matcher = _seed_matcher()
    raw = _seed_articles()[0].model_dump_json().encode()
    once, again = processor.process(raw, matcher, NOW), processor.process(raw, matcher, NOW)
    assert [r.value for r in once.alerts] == [r.value for r in again.alerts]


def _record(rule_id: str, any_: list[str]) -> RuleRecord:
    rule = WatchlistRule(id=rule_id, name=rule_id, any=any_)
    return RuleRecord(tenant="t", rule=rule, version=rule.version(), updated_at=NOW)


def test_staged_rule_changes_take_effect_at_the_next_compile_and_the_last_one_wins() -> None:
    rules = LiveRuleset()
    rules.stage(("t", "a"), _record("a", ["alpha"]))
    rules.stage(("t", "b"), _record("b", ["beta"]))
    rules.stage(("t", "b"), None)
    assert len(rules.matcher) == 0
    assert rules.pending == 2
    compiled = rules.compile_pending()
    assert (compiled.upserts, compiled.deletes, compiled.errors) == (1, 1, [])
    assert [r.rule_id for r in rules.matcher.rules()] == ["a"]
    assert rules.pending == 0


def test_a_rule_key_names_a_tenant_and_a_rule() -> None:
    assert parse_rule_key("acme/li-shangfu") == ("acme", "li-shangfu")
    assert parse_rule_key("no-slash") is None
    assert parse_rule_key("/rule") is None


def test_an_alert_record_is_keyed_by_tenant_and_rule_and_says_its_severity() -> None:
    processor = ArticleProcessor(StoryIndex())
    for article in _seed_articles():
        outcome = processor.process(article.model_dump_json().encode(), _seed_matcher(), NOW)
        for record, alert in zip(outcome.alerts, _alerts(outcome), strict=True):
            assert record.key == f"{alert.tenant}/{alert.rule_id}".encode()
            assert (record.alert_id, record.severity) == (alert.alert_id, alert.severity.value)
            assert alert.evidence


def test_an_alert_too_large_for_a_kafka_record_is_left_out_and_the_reason_names_it() -> None:
    matcher, errors = Matcher.build(
        ("t", r.rule) for r in (_record("china", ["China"]), _record("budget", ["budget vote"]))
    )
    assert not errors
    # Evidence quotes every occurrence: 20,000 of them make an alert of over a megabyte.
    article = Article(
        article_id="long",
        title="The budget vote",
        body="China " * 20_000,
        received_at=NOW,
    )

    outcome = ArticleProcessor(StoryIndex()).process(
        article.model_dump_json().encode(), matcher, NOW
    )

    [oversized] = outcome.oversized
    assert len(oversized.value) > MAX_ALERT_BYTES
    assert [a.rule_id for a in _alerts(outcome)] == ["budget"], "the other alert goes out"
    assert outcome.story is not None
    assert outcome.reason is not None
    assert oversized.alert_id in outcome.reason
    assert "t/china" in outcome.reason


def test_a_left_out_alert_leaves_the_first_of_story_to_the_storys_next_article(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    matcher, errors = Matcher.build([("t", _record("china", ["China"]).rule)])
    assert not errors
    first, copy = _seed_articles()
    long = first.model_copy(update={"body": first.body + " China" * 400})
    short = copy.model_copy(update={"body": copy.body + " China"})
    processor = ArticleProcessor(StoryIndex())
    encoded = [a.model_dump_json().encode() for a in (long, short)]
    # Between the two alerts' sizes: the long article's is left out, the copy's goes out.
    sizes = [len(r.value) for raw in encoded for r in processor_of(matcher, raw).alerts]
    monkeypatch.setattr(processing, "MAX_ALERT_BYTES", (sizes[0] + sizes[1]) // 2)

    left = processor.process(encoded[0], matcher, NOW)
    later = processor.process(encoded[1], matcher, NOW)

    assert left.oversized
    assert later.story is not None
    assert left.story is not None
    assert later.story.story_id == left.story.story_id, "one story"
    [alert] = _alerts(later)
    assert alert.first_of_story, "the first alert anyone got of this story"
    assert "t/china" not in left.story.first_for


def processor_of(matcher: Matcher, raw: bytes) -> Processed:
    """What a fresh processor (an index of its own) makes of `raw`."""
    return ArticleProcessor(StoryIndex()).process(raw, matcher, NOW)


def test_the_reason_names_every_left_out_alert_however_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = [_record(f"china-{n}", ["China"]) for n in range(60)]
    matcher, errors = Matcher.build(("t", r.rule) for r in rules)
    assert not errors
    monkeypatch.setattr(processing, "MAX_ALERT_BYTES", 10)
    article = Article(article_id="a", title="China", received_at=NOW)

    outcome = ArticleProcessor(StoryIndex()).process(
        article.model_dump_json().encode(), matcher, NOW
    )

    assert len(outcome.oversized) == 60
    assert outcome.alerts == []
    assert outcome.reason is not None
    assert outcome.reason.startswith("60 alert(s) left out")
    assert all(a.alert_id in outcome.reason for a in outcome.oversized)


def test_a_dead_letter_keeps_the_value_if_it_fits_and_else_says_where_it_is() -> None:
    fits = b"x" * 600_000
    over = b"x" * (MAX_RECORD_BYTES // 4 * 3)  # its base64 alone takes all the room

    kept = rejected_record(("articles", 2, 41, b"k", fits), "not a valid Article", NOW)
    left = rejected_record(("articles", 2, 42, b"k", over), "not a valid Article", NOW)

    assert base64.b64decode(kept.value_b64) == fits
    assert kept.reason == "not a valid Article"
    assert left.value_b64 == ""
    assert left.reason.startswith("not a valid Article (the value, ")
    assert "it is at articles/2/42" in left.reason
    assert RejectedRecord.model_validate_json(left.model_dump_json()) == left


def _left_out_alerts(count: int) -> list[AlertRecord]:
    return [
        AlertRecord(f"t/rule-{n}".encode(), b"{}", f"alert_{n:032x}", "high") for n in range(count)
    ]


@pytest.mark.parametrize("left_out", [1, 60, 20_000])
@pytest.mark.parametrize("value_bytes", [0, 600_000, 760_000, 1_000_000])
def test_the_largest_dead_letter_fits_in_a_kafka_record(left_out: int, value_bytes: int) -> None:
    # A foreign producer's key of a megabyte, of characters JSON escapes six bytes to one; a
    # value as large as Kafka takes; a tenant with thousands of rules all too large to alert.
    key = b"\x01" * 1_000_000
    reason = processing._left_out(_left_out_alerts(left_out), produced=3)

    rejected = rejected_record(("articles", 0, 7, key, b"v" * value_bytes), reason, NOW)

    assert rejected.key is not None
    assert len(rejected.key) == MAX_KEY_CHARS
    assert "(the key, 1000000 bytes, is cut)" in rejected.reason
    assert record_size(dead_letter_key(key), encode(rejected)) <= MAX_RECORD_BYTES
    if value_bytes <= 600_000:  # fits beside any key and reason: kept
        assert base64.b64decode(rejected.value_b64) == b"v" * value_bytes
    if value_bytes == 1_000_000:  # its base64 alone is over: left out
        assert rejected.value_b64 == ""


def test_a_reason_lists_as_many_left_out_ids_as_it_has_room_for_and_counts_the_rest() -> None:
    alerts = _left_out_alerts(20_000)

    reason = processing._left_out(alerts, produced=0)

    assert reason.startswith("20000 alert(s) left out")
    assert alerts[0].alert_id in reason
    assert alerts[-1].alert_id not in reason
    listed = sum(a.alert_id in reason for a in alerts)
    assert f"and {20_000 - listed} more" in reason
    assert len(reason) <= processing.MAX_LISTED_CHARS + 500
