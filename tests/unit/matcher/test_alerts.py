"""Alert records are written straight to JSON: they must be exactly what the contract writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from newsalert_native import write_alerts

from schemas.alert import Alert
from schemas.article import Article
from schemas.identity import alert_id
from schemas.watchlist import WatchlistRule
from services.matcher.alerts import (
    ArticleAlerts,
    RuleFields,
    _quoted_json,
    evidence_of,
    summary_of,
)
from services.matcher.engine.matcher import Matcher

MATCHED_AT = datetime(2023, 4, 15, 12, 0, 0, 123456, tzinfo=UTC)

TRICKY = [
    'He said "Li Shangfu" twice',
    "a back\\slash, a tab\tand a bell\x07 near Li Shangfu",
    "Li Shangfu (李尚福) 🚀 in Zürich\u2028next line",
    "Li Shangfu\x1f\x7f at the end",
]


def _writer(article: Article, story_sources: list[str] | None = None) -> ArticleAlerts:
    """The alert writer of `article`, in story `story_1`, matched at MATCHED_AT."""
    return ArticleAlerts(
        article,
        rule_fields=RuleFields(),
        story_id="story_1",
        story_sources=story_sources or [],
        matched_at=MATCHED_AT,
    )


def _matcher() -> Matcher:
    rules = [
        WatchlistRule(
            id="li-shangfu",
            name='Li "the general" Shangfu \\ aliases',
            any=["Li Shangfu", "李尚福"],
            tags=["people", "defence"],
            severity="high",
        ),
        WatchlistRule(id="zurich", name="Zürich", query="zurich OR bell"),
    ]
    matcher, errors = Matcher.build(("acme", r) for r in rules)
    assert not errors
    return matcher


@pytest.mark.parametrize("body", TRICKY)
@pytest.mark.parametrize("first_of_story", [True, False])
def test_an_alert_record_is_byte_for_byte_what_the_alert_model_writes(
    body: str, first_of_story: bool
) -> None:
    article = Article(
        article_id="art-1",
        url="https://example.com/a?b=1",
        source="example.com",
        title='Title with "quotes" and Li Shangfu',
        body=body,
        language="en",
        published_at=datetime(2023, 4, 15, 9, 30, tzinfo=timezone(timedelta(hours=2))),
        received_at=datetime(2023, 4, 15, 9, 31, 5, 250000, tzinfo=UTC),
    )
    sources = ["example.com", 'odd "source"']
    writer = _writer(article, sources)
    matches = _matcher().match(article).matches
    assert matches
    for match in matches:
        record = writer.record(match, first_of_story=first_of_story)
        evidence, snippet = evidence_of(match)
        rule = match.rule.rule
        expected = Alert(
            alert_id=record.alert_id,
            tenant=match.tenant,
            rule_id=rule.id,
            rule_name=rule.name,
            rule_version=match.rule_version,
            severity=rule.severity,
            tags=list(rule.tags),
            article=summary_of(article),
            evidence=evidence,
            snippet=snippet,
            story_id="story_1",
            first_of_story=first_of_story,
            story_sources=sources,
            matched_at=MATCHED_AT,
        )
        assert record.value == expected.model_dump_json().encode()
        assert record.key == f"acme/{rule.id}".encode()


def test_an_alert_without_optional_article_fields_is_still_the_model_s_json() -> None:
    article = Article(article_id="art-2", title="", body="Li Shangfu", received_at=MATCHED_AT)
    writer = _writer(article)
    [match] = _matcher().match(article).matches
    record = writer.record(match, first_of_story=True)
    parsed = Alert.model_validate_json(record.value)
    assert parsed.model_dump_json().encode() == record.value
    assert parsed.article.url is None
    assert parsed.story_sources == []


# -- native evidence ----------------------------------------------------------------------
# Alerts take their evidence from the native writer (src/quote.rs); evidence.py and
# `_quoted_json` are its definition. Texts mix what makes offsets hard: accents composed and
# decomposed, characters that expand (ß, ﬁ) or vanish (soft hyphen), CJK tokens, emoji,
# newlines inside snippets, quotes and control characters, and long runs without spaces.

_WORDS = st.sampled_from(
    [
        "china",
        "Beijing",
        "Zürich",
        "Zu\u0308rich",
        "straße",
        "ﬁnance",
        "Li",
        "Shangfu",
        "李尚福",
        "🚀",
        'say"s',
        "back\\slash",
        "bell\x07",
        "drill",
        "drills",
        "Rus\u00adsia",
        "x" * 120,
        "U.S.",
        "defence",
        "Müller's",
        "\u2028",
        "İstanbul",
    ]
)
_GAPS = st.sampled_from([" ", "  ", "\n", " \n ", ", ", "\t", ". ", "-"])


@st.composite
def _texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(_WORDS, min_size=1, max_size=60))
    gaps = draw(st.lists(_GAPS, min_size=len(words), max_size=len(words)))
    return "".join(w + g for w, g in zip(words, gaps, strict=True))


_EVIDENCE_RULES = [
    WatchlistRule(id="names", name="n", any=["Li Shangfu", "李尚福", "zurich", "Müller"]),
    WatchlistRule(id="near", name="n", query="(china OR beijing) NEAR/5 (russia OR defence)"),
    WatchlistRule(id="stems", name="n", query="drill", stem=True),
    WatchlistRule(id="title-only", name="n", query="title:finance OR strasse"),
    WatchlistRule(id="prefix", name="n", query="istan* AND NOT zzz"),
    WatchlistRule(id="long", name="n", any=["x" * 120, "U.S."]),
]


@settings(max_examples=300, deadline=None)
@given(title=_texts(), body=_texts())
def test_the_native_evidence_is_the_evidence_python_quotes(title: str, body: str) -> None:
    matcher, errors = Matcher.build(("acme", r) for r in _EVIDENCE_RULES)
    assert not errors
    article = Article(article_id="a", title=title, body=body, received_at=MATCHED_AT)
    for match in matcher.match(article).matches:
        native = match.evidence_json()
        assert native is not None
        assert native == _quoted_json(match.quoted)


@pytest.mark.parametrize("body", TRICKY)
def test_the_alerts_of_a_whole_result_are_the_alerts_of_each_match(body: str) -> None:
    article = Article(article_id="art-3", title="Li Shangfu", body=body, received_at=MATCHED_AT)
    writer = _writer(article)
    matcher = _matcher()
    result = matcher.match(article)
    firsts = [n % 2 == 0 for n in range(len(result.rules))]
    together = writer.records(result, lambda keys: firsts)
    one_by_one = [
        writer.record(match, first_of_story=first)
        for match, first in zip(matcher.match(article).matches, firsts, strict=True)
    ]
    assert together == one_by_one
    assert [Alert.model_validate_json(r.value).first_of_story for r in together] == firsts


@settings(max_examples=200, deadline=None)
@given(
    title=_texts(),
    body=_texts(),
    article_id=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z"),
    story_sources=st.lists(st.sampled_from(["bbc.co.uk", 'q"uote', "ünï"]), max_size=3),
)
def test_the_native_alert_writer_writes_what_python_writes(
    title: str, body: str, article_id: str, story_sources: list[str]
) -> None:
    matcher, _ = Matcher.build(("acme", r) for r in _EVIDENCE_RULES)
    article = Article(article_id=article_id, title=title, body=body, received_at=MATCHED_AT)
    writer = _writer(article, story_sources)
    result = matcher.match(article)
    firsts = [n % 3 != 1 for n in range(len(result.rules))]
    asked: list[list[str]] = []
    native = writer.records(result, lambda keys: asked.append(keys) or firsts)
    assert asked == [[f"acme/{rule.rule_id}" for rule in result.rules]]  # once, in rule order
    python = [
        writer.record(match, first_of_story=first)
        for match, first in zip(result.matches, firsts, strict=True)
    ]
    assert native == python
    for record, match in zip(native, result.matches, strict=True):
        assert record.alert_id == alert_id("acme", match.rule_id, match.rule_version, article_id)


def test_the_native_alert_writer_refuses_parts_that_do_not_line_up() -> None:
    article = Article(article_id="a", title="Li Shangfu", body="", received_at=MATCHED_AT)
    writer, scan, indices = _matcher().match(article).native_evidence() or pytest.fail("scanned")
    with pytest.raises(ValueError, match="0 rules and 0 flags for 1 matches"):
        write_alerts(writer, scan, indices, [], [], b"a", ("", "", "", ""))
