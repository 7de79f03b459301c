"""rules.md, clause by clause, as a table: every case runs against both engines.

Each case is one rule (`"..."` is a query, `[...]` an `any` list, a dict the full rule), one
article, and the expected evidence: None when the rule must not match, else the exact list of
quoted occurrences, in the contract's order (title before body, then by start). An expected
occurrence is written `B("Li Shangfu")` (the first "Li Shangfu" in the body) or `T("China", 1)`
(the second "China" in the title); its offsets are found in the article text by the test, so a
case reads like the sentence it checks.

The fast path's candidate selection is checked separately at the end of the file: it must stay
selective, and it must never lose a rule that has no trigger.
"""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from schemas.watchlist import WatchlistRule
from services.matcher.engine.evidence import Span
from services.matcher.engine.matcher import Matcher, MatchResult
from tests.unit.engine.conftest import ENGINES, TENANT, MatchFn, article, make_rule

Expected = tuple[str, str, int]


def T(needle: str, nth: int = 0) -> Expected:
    """The nth occurrence of `needle` in the title."""
    return ("title", needle, nth)


def B(needle: str, nth: int = 0) -> Expected:
    """The nth occurrence of `needle` in the body."""
    return ("body", needle, nth)


def _rule(spec: str | list[str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"query": spec}
    if isinstance(spec, list):
        return {"any": spec}
    return dict(spec)


def case(
    case_id: str,
    rule: str | list[str] | dict[str, Any],
    *,
    title: str = "",
    body: str = "",
    expect: list[Expected] | None,
    **article_fields: Any,
) -> Any:
    return pytest.param(_rule(rule), title, body, expect, article_fields, id=case_id)


def resolve(expected: list[Expected], title: str, body: str) -> list[Span]:
    """The expected occurrences as spans of the article text."""
    texts = {"title": title, "body": body}
    spans = []
    for field, needle, nth in expected:
        start = -1
        for _ in range(nth + 1):
            start = texts[field].find(needle, start + 1)
            assert start >= 0, f"bad test case: {needle!r} #{nth} not in the {field}"
        spans.append(Span(field, start, start + len(needle), needle))
    return spans


# --- Section 2: text analysis --------------------------------------------------------------

ANALYSIS = [
    case("accent/composed-article", ["cafe"], body="Le café ouvre.", expect=[B("café")]),
    case(
        "accent/decomposed-article",
        ["cafe"],
        body="Le cafe\u0301 ouvre.",
        expect=[B("cafe\u0301")],
    ),
    case("accent/composed-rule", ["café"], body="Un cafe noir", expect=[B("cafe")]),
    case(
        "accent/composed-rule-decomposed-article",
        ["café"],
        body="Un cafe\u0301 noir",
        expect=[B("cafe\u0301")],
    ),
    case("accent/decomposed-rule", ["cafe\u0301"], body="Un café noir", expect=[B("café")]),
    case("accent/query-term", "café", body="CAFE OPENS", expect=[B("CAFE")]),
    case("nfkc/ligature", ["fire drill"], body="a \ufb01re drill", expect=[B("\ufb01re drill")]),
    case("nfkc/superscript-digit", "2", body="km\u00b2", expect=None),
    case("nfkc/superscript-digit-is-a-digit", ["km2"], body="10 km\u00b2", expect=[B("km\u00b2")]),
    case("case/upper-rule", ["CHINA"], body="china said", expect=[B("china")]),
    case("fullwidth/article", ["china"], body="ＣＨＩＮＡ said", expect=[B("ＣＨＩＮＡ")]),
    case("fullwidth/rule", ["ＣＨＩＮＡ"], body="China said", expect=[B("China")]),
    case(
        "ignored/soft-hyphen-inside-name",
        ["Li Shangfu"],
        body="General Li Shang\u00adfu spoke",
        expect=[B("Li Shang\u00adfu")],
    ),
    case(
        "ignored/zero-width-space-inside-name",
        ["Li Shangfu"],
        body="General Li Shang\u200bfu spoke",
        expect=[B("Li Shang\u200bfu")],
    ),
    *[
        case(
            f"ignored/U+{ord(char):04X}-inside-name",
            ["shangfu"],
            body=f"Shang{char}fu spoke",
            expect=[B(f"Shang{char}fu")],
        )
        for char in "\u200c\u200d\u2060\ufeff"
    ],
    case(
        "ignored/zero-width-after-word-not-quoted",
        ["shangfu"],
        body="Shangfu\u200b spoke",
        expect=[B("Shangfu")],
    ),
    case(
        "ignored/soft-hyphen-in-rule",
        ["Shang\u00adfu"],
        body="Shangfu spoke",
        expect=[B("Shangfu")],
    ),
    case(
        "ignored/soft-hyphen-does-not-split",
        ["shang"],
        body="Shang\u00adfu spoke",
        expect=None,
    ),
    case("turkish/dotted-capital-I", ["istanbul"], body="İstanbul'da", expect=[B("İstanbul")]),
    case(
        "turkish/dotted-capital-I-in-rule", ["İSTANBUL"], body="in istanbul", expect=[B("istanbul")]
    ),
    case("casefold/sharp-s-article", ["strasse"], body="Die Straße ist", expect=[B("Straße")]),
    case("casefold/sharp-s-rule", ["Straße"], body="DIE STRASSE", expect=[B("STRASSE")]),
    case(
        "cjk/name-inside-unspaced-text",
        ["李尚福"],
        body="中国国防部长李尚福将访问俄罗斯",
        expect=[B("李尚福")],
    ),
    case(
        "cjk/name-between-latin-words",
        ["李尚福"],
        body="Minister 李尚福 said",
        expect=[B("李尚福")],
    ),
    case("cjk/part-of-name-only", ["李尚福"], body="中国国防部长李尚将访问", expect=None),
    case("cjk/quoted-phrase-in-query", '"李尚福"', body="部长李尚福将", expect=[B("李尚福")]),
    case("cjk/katakana", ["ロシア"], body="ロシア軍が", expect=[B("ロシア")]),
    case("cjk/hangul-syllables", ["서울"], body="서울시는", expect=[B("서울")]),
    case("possessive/ascii-apostrophe", ["china"], body="China's army", expect=[B("China")]),
    case("possessive/typographic-apostrophe", ["china"], body="China’s army", expect=[B("China")]),
    case(
        "possessive/dropped-so-phrase-continues",
        ["china army"],
        body="China's army",
        expect=[B("China's army")],
    ),
    case(
        "possessive/soft-hyphen-after-apostrophe",
        ["china army"],
        body="China'\u00ads army",
        expect=[B("China'\u00ads army")],
    ),
    case(
        "possessive/zero-width-after-s",
        ["china army"],
        body="China’s\u200b army",
        expect=[B("China’s\u200b army")],
    ),
    case("possessive/in-rule", ["China's"], body="China said", expect=[B("China")]),
    case("possessive/s-is-not-a-token", "s", body="China's army", expect=None),
    case("apostrophe/splits-word", "don", body="I don't know", expect=[B("don")]),
    case("apostrophe/both-parts-as-phrase", '"don t"', body="I don't know", expect=[B("don't")]),
    case("apostrophe/second-part", "t", body="I don’t know", expect=[B("t")]),
    case(
        "hyphen/phrase-matches-hyphenated",
        ["indo pacific"],
        body="the Indo-Pacific region",
        expect=[B("Indo-Pacific")],
    ),
    case("hyphen/term-matches-part", "pacific", body="the Indo-Pacific", expect=[B("Pacific")]),
    case(
        "hyphen/hyphenated-rule-matches-spaced",
        ["Indo-Pacific"],
        body="the indo pacific",
        expect=[B("indo pacific")],
    ),
    case("us/dotted", '"U.S."', body="U.S. and Europe", expect=[B("U.S")]),
    case("us/spaced", '"U.S."', body="the u s navy", expect=[B("u s")]),
    case("us/any-list", ["U.S."], body="The U.S. said", expect=[B("U.S")]),
    case("us/not-the-word-us", ["U.S."], body="US officials", expect=None),
    case("us/s-is-a-token-here", "s", body="U.S. officials", expect=[B("S")]),
    case("digits/are-tokens", "2023", body="April 15, 2023", expect=[B("2023")]),
    case("digits/split-by-hyphen", ["g 7"], body="the G-7 summit", expect=[B("G-7")]),
    case(
        "punctuation/separates-like-space",
        ["li shangfu"],
        body="Li,\nShangfu",
        expect=[B("Li,\nShangfu")],
    ),
]

# --- Section 3: query syntax and semantics --------------------------------------------------

QUERIES = [
    case(
        "and/juxtaposition",
        "china russia",
        body="China and Russia",
        expect=[B("China"), B("Russia")],
    ),
    case(
        "and/every-occurrence-of-every-atom",
        "china russia",
        body="China, China and Russia",
        expect=[B("China"), B("China", 1), B("Russia")],
    ),
    case("and/juxtaposition-one-missing", "china russia", body="China alone", expect=None),
    case(
        "and/explicit", "china AND russia", body="Russia, China", expect=[B("Russia"), B("China")]
    ),
    case("and/explicit-one-missing", "china AND russia", body="Russia", expect=None),
    case(
        "and/lower-case-and-is-a-term",
        "china and russia",
        body="China and Russia",
        expect=[B("China"), B("and"), B("Russia")],
    ),
    case("and/lower-case-and-required", "china and russia", body="China, Russia", expect=None),
    case("or/lower-case-or-is-a-term", "china or russia", body="China", expect=None),
    case("or/one-child", "china OR russia", body="Russia", expect=[B("Russia")]),
    case(
        "or/every-child-that-holds",
        "china OR russia",
        body="Russia and China",
        expect=[B("Russia"), B("China")],
    ),
    case("or/precedence-right-branch", "china russia OR japan", body="Japan", expect=[B("Japan")]),
    case("or/precedence-not-a-and-(b-or-c)", "china russia OR japan", body="China", expect=None),
    case(
        "or/precedence-left-branch",
        "china russia OR japan",
        body="China, Russia",
        expect=[B("China"), B("Russia")],
    ),
    case(
        "or/only-branches-that-hold-give-evidence",
        "china russia OR japan",
        body="Russia and Japan",
        expect=[B("Japan")],
    ),
    case("or/or-of-ands", "a1 b1 OR c1 d1", body="b1 c1", expect=None),
    case("not/holds", "china NOT russia", body="China", expect=[B("China")]),
    case("not/excludes", "china NOT russia", body="China and Russia", expect=None),
    case("not/minus-holds", "china -russia", body="China", expect=[B("China")]),
    case("not/minus-excludes", "china -russia", body="Russia and China", expect=None),
    case("not/excludes-from-title", "china NOT russia", title="Russia", body="China", expect=None),
    case(
        "not/double-negation-gives-no-evidence",
        "china NOT NOT russia",
        body="China and Russia",
        expect=[B("China")],
    ),
    case("not/binds-tighter-than-and", "NOT russia china", body="China", expect=[B("China")]),
    case(
        "not/binds-tighter-than-and-excludes", "NOT russia china", body="China Russia", expect=None
    ),
    case(
        "not/binds-looser-than-near-excludes",
        "japan NOT china NEAR/1 russia",
        body="Japan China Russia",
        expect=None,
    ),
    case(
        "not/binds-looser-than-near-holds",
        "japan NOT china NEAR/1 russia",
        body="Japan China and so Russia",
        expect=[B("Japan")],
    ),
    case("not/under-or-matches-without-evidence", "china OR NOT russia", body="Nothing", expect=[]),
    case(
        "near/in-order-at-n",
        "china NEAR/2 russia",
        body="China will visit Russia",
        expect=[B("China"), B("Russia")],
    ),
    case(
        "near/reverse-order-at-n",
        "china NEAR/2 russia",
        body="Russia will visit China",
        expect=[B("Russia"), B("China")],
    ),
    case(
        "near/in-order-at-n+1",
        "china NEAR/2 russia",
        body="China will soon visit Russia",
        expect=None,
    ),
    case(
        "near/reverse-order-at-n+1",
        "china NEAR/2 russia",
        body="Russia will soon visit China",
        expect=None,
    ),
    case(
        "near/0-adjacent",
        "china NEAR/0 russia",
        body="China Russia ties",
        expect=[B("China"), B("Russia")],
    ),
    case(
        "near/0-hyphen-is-adjacent",
        "china NEAR/0 russia",
        body="China-Russia ties",
        expect=[B("China"), B("Russia")],
    ),
    case("near/0-one-between", "china NEAR/0 russia", body="China and Russia", expect=None),
    case(
        "near/100-allowed",
        "china NEAR/100 russia",
        body="China " + "x " * 100 + "Russia",
        expect=[B("China"), B("Russia")],
    ),
    case(
        "near/operands-may-not-overlap",
        '"china russia" NEAR/0 russia',
        body="China Russia",
        expect=None,
    ),
    case(
        "near/operands-adjacent-after-overlap",
        '"china russia" NEAR/0 russia',
        body="China Russia Russia",
        expect=[B("China Russia"), B("Russia", 1)],
    ),
    case("near/same-occurrence-is-not-a-pair", "china NEAR/3 china", body="China", expect=None),
    case(
        "near/same-term-twice",
        "china NEAR/3 china",
        body="China and China",
        expect=[B("China"), B("China", 1)],
    ),
    case(
        "near/distance-from-phrase-end",
        '"li shangfu" NEAR/1 russia',
        body="Li Shangfu visits Russia",
        expect=[B("Li Shangfu"), B("Russia")],
    ),
    case(
        "near/distance-to-phrase-start",
        '"li shangfu" NEAR/1 russia',
        body="Russia welcomes Li Shangfu",
        expect=[B("Russia"), B("Li Shangfu")],
    ),
    case(
        "near/phrase-too-far",
        '"li shangfu" NEAR/1 russia',
        body="Li Shangfu will visit Russia",
        expect=None,
    ),
    case(
        "near/or-operands",
        "(china OR beijing) NEAR/2 (russia OR moscow)",
        body="Beijing and Moscow",
        expect=[B("Beijing"), B("Moscow")],
    ),
    case(
        "near/or-operands-only-paired-alternatives",
        "(china OR beijing) NEAR/1 russia",
        body="Beijing is far away from us. China, Russia.",
        expect=[B("China"), B("Russia")],
    ),
    case(
        "near/only-occurrences-within-distance",
        "china NEAR/1 russia",
        body="China is far from this. Russia and China agree.",
        expect=[B("Russia"), B("China", 1)],
    ),
    case(
        "near/every-paired-occurrence",
        "china NEAR/1 russia",
        body="China, Russia, China",
        expect=[B("China"), B("Russia"), B("China", 1)],
    ),
    case(
        "near/prefix-operand",
        "milit* NEAR/1 china",
        body="military, China",
        expect=[B("military"), B("China")],
    ),
    case(
        "near/never-spans-title-and-body",
        "china NEAR/5 russia",
        title="Talks with China",
        body="Russia responded",
        expect=None,
    ),
    case(
        "near/within-title",
        "china NEAR/1 russia",
        title="China and Russia",
        body="nothing",
        expect=[T("China"), T("Russia")],
    ),
    case(
        "near/in-and",
        "china NEAR/1 russia AND defence",
        body="defence: China and Russia",
        expect=[B("defence"), B("China"), B("Russia")],
    ),
    case(
        "phrase/consecutive",
        ["li shangfu"],
        body="General Li Shangfu",
        expect=[B("Li Shangfu")],
    ),
    case("phrase/gap-is-not-a-match", ["li shangfu"], body="Li the Shangfu", expect=None),
    case("phrase/order-matters", ["li shangfu"], body="Shangfu Li", expect=None),
    case(
        "phrase/never-spans-title-and-body",
        ["li shangfu"],
        title="Minister Li",
        body="Shangfu arrived",
        expect=None,
    ),
    case(
        "phrase/every-occurrence",
        ["li shangfu"],
        title="Li Shangfu",
        body="Li Shangfu and Li Shangfu",
        expect=[T("Li Shangfu"), B("Li Shangfu"), B("Li Shangfu", 1)],
    ),
    case("field/title-prefix-in-title", "title:china", title="China", expect=[T("China")]),
    case("field/title-prefix-not-body", "title:china", title="x", body="China", expect=None),
    case("field/body-prefix-not-title", "body:china", title="China", body="x", expect=None),
    case(
        "field/unscoped-in-both",
        "china",
        title="China",
        body="China",
        expect=[T("China"), B("China")],
    ),
    case(
        "field/phrase",
        'title:"li shangfu"',
        title="Li Shangfu",
        body="Li Shangfu",
        expect=[T("Li Shangfu")],
    ),
    case(
        "field/prefix-atom",
        "body:milit*",
        title="military",
        body="militia",
        expect=[B("militia")],
    ),
    case(
        "field/binds-tighter-than-near",
        "title:china NEAR/1 russia",
        title="x",
        body="China Russia",
        expect=None,
    ),
    case(
        "field/binds-tighter-than-near-holds",
        "title:china NEAR/1 russia",
        title="China, Russia",
        body="China Russia",
        expect=[T("China"), T("Russia")],
    ),
    case(
        "fields/title-only-rule",
        {"any": ["china"], "fields": ["title"]},
        title="x",
        body="China",
        expect=None,
    ),
    case(
        "fields/title-only-rule-holds",
        {"any": ["china"], "fields": ["title"]},
        title="China",
        body="China",
        expect=[T("China")],
    ),
    case(
        "fields/body-only-rule",
        {"query": "china", "fields": ["body"]},
        title="China",
        body="China too",
        expect=[B("China")],
    ),
    case(
        "fields/prefix-overrides-rule-fields",
        {"query": "china body:russia", "fields": ["title"]},
        title="China",
        body="Russia",
        expect=[T("China"), B("Russia")],
    ),
    case(
        "fields/title-prefix-in-body-only-rule",
        {"query": "title:china", "fields": ["body"]},
        title="China",
        body="China",
        expect=[T("China")],
    ),
    case(
        "prefix/matches-every-token-starting-with-it",
        "milit*",
        body="military and militia, MILITANTS",
        expect=[B("military"), B("militia"), B("MILITANTS")],
    ),
    case("prefix/whole-word-counts", "milit*", body="milit", expect=[B("milit")]),
    case("prefix/only-at-token-start", "milit*", body="demilitarised zone", expect=None),
    case("prefix/analysed", "CAFÉ*", body="Cafétéria", expect=[B("Cafétéria")]),
    case(
        "prefix/unstemmed-article-token-with-stem",
        {"query": "runn*", "stem": True},
        body="running",
        expect=[B("running")],
    ),
    case(
        "prefix/not-compared-with-stems",
        {"query": "happi*", "stem": True},
        body="happy",
        expect=None,
    ),
    case(
        "prefix/never-stemmed-itself",
        {"query": "running*", "stem": True},
        body="he runs",
        expect=None,
    ),
    case("prefix/star-in-any-is-punctuation", ["milit*"], body="military", expect=None),
    case("prefix/star-in-any-phrase-holds", ["milit*"], body="milit", expect=[B("milit")]),
    case(
        "stem/plural-article",
        {"any": ["military drill"], "stem": True},
        body="Russia held military drills",
        expect=[B("military drills")],
    ),
    case(
        "stem/gerund-article",
        {"any": ["military drill"], "stem": True},
        body="military drilling",
        expect=[B("military drilling")],
    ),
    case(
        "stem/plural-rule",
        {"any": ["military drills"], "stem": True},
        body="a military drill",
        expect=[B("military drill")],
    ),
    case(
        "stem/query-term",
        {"query": "drill", "stem": True},
        body="They Drilled",
        expect=[B("Drilled")],
    ),
    case("stem/off-plural", ["military drill"], body="military drills", expect=None),
    case("stem/off-gerund", ["military drill"], body="military drilling", expect=None),
    case("stem/off-exact", ["military drill"], body="military drill", expect=[B("military drill")]),
    case(
        "none/no-exclusion-present",
        {"any": ["china"], "none": ["taiwan"]},
        body="China",
        expect=[B("China")],
    ),
    case(
        "none/excludes-body",
        {"any": ["china"], "none": ["taiwan"]},
        body="China and Taiwan",
        expect=None,
    ),
    case(
        "none/excludes-title",
        {"any": ["china"], "none": ["taiwan"]},
        title="Taiwan",
        body="China",
        expect=None,
    ),
    case(
        "none/phrase-must-occur-whole",
        {"query": "china", "none": ["taiwan strait"]},
        body="China and Taiwan",
        expect=[B("China")],
    ),
    case(
        "none/phrase-excludes-query-rule",
        {"query": "china", "none": ["taiwan strait"]},
        body="China near the Taiwan Strait",
        expect=None,
    ),
    case(
        "none/respects-rule-fields",
        {"any": ["china"], "none": ["taiwan"], "fields": ["body"]},
        title="Taiwan",
        body="China",
        expect=[B("China")],
    ),
    case(
        "none/stemmed-with-the-rule",
        {"any": ["military drill"], "none": ["fire drill"], "stem": True},
        body="military drills after fire drills",
        expect=None,
    ),
    case(
        "none/case-and-accents",
        {"any": ["china"], "none": ["taiwan"]},
        body="China, TAÏWAN",
        expect=None,
    ),
]

# --- Section 1 filters and section 5 evidence -----------------------------------------------

FILTERS = [
    case(
        "language/allowed",
        {"any": ["china"], "languages": ["en"]},
        body="China",
        language="en",
        expect=[B("China")],
    ),
    case(
        "language/other",
        {"any": ["china"], "languages": ["en"]},
        body="China",
        language="de",
        expect=None,
    ),
    case(
        "language/unknown-never-passes",
        {"any": ["china"], "languages": ["en"]},
        body="China",
        expect=None,
    ),
    case(
        "language/no-filter-any-language",
        ["china"],
        body="China",
        language="de",
        expect=[B("China")],
    ),
    case("language/no-filter-unknown", ["china"], body="China", expect=[B("China")]),
    case(
        "language/one-of-several",
        {"any": ["china"], "languages": ["de", "en"]},
        body="China",
        language="en",
        expect=[B("China")],
    ),
    case(
        "source/exact-domain",
        {"any": ["china"], "sources": ["reuters.com"]},
        body="China",
        source="reuters.com",
        expect=[B("China")],
    ),
    case(
        "source/subdomain",
        {"any": ["china"], "sources": ["reuters.com"]},
        body="China",
        source="uk.reuters.com",
        expect=[B("China")],
    ),
    case(
        "source/case-insensitive",
        {"any": ["china"], "sources": ["reuters.com"]},
        body="China",
        source="UK.Reuters.com",
        expect=[B("China")],
    ),
    case(
        "source/not-a-suffix-of-a-label",
        {"any": ["china"], "sources": ["reuters.com"]},
        body="China",
        source="notreuters.com",
        expect=None,
    ),
    case(
        "source/not-a-prefix",
        {"any": ["china"], "sources": ["reuters.com"]},
        body="China",
        source="reuters.com.evil.net",
        expect=None,
    ),
    case(
        "source/unknown-never-passes",
        {"any": ["china"], "sources": ["reuters.com"]},
        body="China",
        expect=None,
    ),
    case(
        "source/one-of-several",
        {"any": ["china"], "sources": ["apnews.com", "reuters.com"]},
        body="China",
        source="reuters.com",
        expect=[B("China")],
    ),
    case(
        "evidence/title-before-body",
        "russia china",
        title="Russia",
        body="China and Russia",
        expect=[T("Russia"), B("China"), B("Russia")],
    ),
    case(
        "evidence/sorted-by-start-not-query-order",
        "russia OR china",
        body="China, Russia, China",
        expect=[B("China"), B("Russia"), B("China", 1)],
    ),
    case(
        "evidence/duplicate-alternatives-once",
        ["china", "China", "CHINA"],
        body="China",
        expect=[B("China")],
    ),
    case("evidence/duplicate-or-once", "china OR china", body="China", expect=[B("China")]),
    case("evidence/duplicate-and-once", "china china", body="China", expect=[B("China")]),
    case(
        "evidence/overlapping-occurrences-both",
        ["li shangfu", "shangfu"],
        body="Li Shangfu",
        expect=[B("Li Shangfu"), B("Shangfu")],
    ),
    case(
        "evidence/any-every-alternative-that-holds",
        ["li shangfu", "李尚福", "defence minister"],
        body="Li Shangfu (李尚福)",
        expect=[B("Li Shangfu"), B("李尚福")],
    ),
    case(
        "evidence/none-gives-no-evidence",
        {"any": ["china"], "none": ["taiwan"]},
        title="China",
        body="Beijing",
        expect=[T("China")],
    ),
]

ALL_CASES = ANALYSIS + QUERIES + FILTERS


def _evidence(result: MatchResult) -> list[Span] | None:
    assert len(result.matches) <= 1
    if not result.matches:
        return None
    [found] = result.matches
    assert (found.tenant, found.rule_id) == (TENANT, "r")
    return [Span(*span) for span in found.evidence]


@pytest.mark.parametrize(("rule", "title", "body", "expect", "article_fields"), ALL_CASES)
def test_rule_matches_as_rules_md_says(
    match: MatchFn,
    rule: dict[str, Any],
    title: str,
    body: str,
    expect: list[Expected] | None,
    article_fields: dict[str, Any],
) -> None:
    result = match([rule], title, body, **article_fields)
    expected = None if expect is None else resolve(expect, title, body)
    assert _evidence(result) == expected


MATCHING_CASES = [p for p in ALL_CASES if p.values[3]]


@pytest.mark.parametrize(("rule", "title", "body", "expect", "article_fields"), MATCHING_CASES)
def test_evidence_quotes_the_field_text_and_the_snippet_shows_the_first_one(
    match: MatchFn,
    rule: dict[str, Any],
    title: str,
    body: str,
    expect: list[Expected] | None,
    article_fields: dict[str, Any],
) -> None:
    [found] = match([rule], title, body, **article_fields).matches
    texts = {"title": title, "body": body}
    for span in found.evidence:
        assert 0 <= span.start < span.end <= len(texts[span.field])
        assert span.text == texts[span.field][span.start : span.end]
    assert found.snippet is not None
    first = found.evidence[0]
    assert found.snippet.field == first.field
    # A snippet is one line: a newline inside the match shows as a space.
    shown = found.snippet.text[found.snippet.match_start : found.snippet.match_end]
    assert shown == first.text.replace("\n", " ")


def test_a_match_without_evidence_has_no_snippet(match: MatchFn) -> None:
    [found] = match([{"query": "china OR NOT russia"}], body="nothing").matches
    assert found.evidence == []
    assert found.snippet is None


def test_snippet_of_a_long_article_is_short_and_holds_the_match(match: MatchFn) -> None:
    body = "filler words\nhere " * 200 + "Li Shangfu arrived. " + "more text\n " * 200
    [found] = match([{"any": ["li shangfu"]}], body=body).matches
    snippet = found.snippet
    assert snippet is not None
    assert len(snippet.text) < 300
    assert "\n" not in snippet.text
    assert snippet.text[snippet.match_start : snippet.match_end] == "Li Shangfu"


def test_phrase_of_sixteen_tokens_matches(match: MatchFn) -> None:
    words = [f"w{i}" for i in range(16)]
    [found] = match([{"any": [" ".join(words)]}], body="x " + " ".join(words) + " y").matches
    assert [s.text for s in found.evidence] == [" ".join(words)]


def test_every_matching_rule_is_reported_with_its_tenant_and_version(match: MatchFn) -> None:
    rules = [
        ("acme", make_rule("china", any=["china"])),
        ("globex", make_rule("china", query="china NOT taiwan")),
        ("acme", make_rule("russia", any=["russia"])),
        ("acme", make_rule("japan", any=["japan"])),
    ]
    result = match(rules, title="China and Russia")
    found = {(m.tenant, m.rule_id): m for m in result.matches}
    assert set(found) == {("acme", "china"), ("globex", "china"), ("acme", "russia")}
    for tenant, rule in rules:
        if (tenant, rule.id) in found:
            assert found[(tenant, rule.id)].rule_version == rule.version()


def test_rules_that_differ_only_in_stem_both_match_their_own_way(match: MatchFn) -> None:
    rules = [
        {"id": "stemmed", "any": ["military drill"], "stem": True},
        {"id": "exact", "any": ["military drill"]},
    ]
    result = match(rules, body="military drills and a military drill")
    evidence = {m.rule_id: [s.text for s in m.evidence] for m in result.matches}
    assert evidence == {
        "stemmed": ["military drills", "military drill"],
        "exact": ["military drill"],
    }


def test_evidence_read_later_belongs_to_its_own_article(engine: str) -> None:
    matcher = ENGINES[engine]([(TENANT, make_rule("cn", query="china OR beijing"))])
    first = matcher(article(body="Beijing said"))
    second = matcher(article(title="China", body="and China again"))
    assert [s.text for s in second.matches[0].evidence] == ["China", "China"]
    assert [tuple(s) for s in first.matches[0].evidence] == [("body", 0, 7, "Beijing")]


def test_prefix_and_stemmed_term_in_one_rule(match: MatchFn) -> None:
    [found] = match([{"query": "runn* AND drill", "stem": True}], body="running drills").matches
    assert [s.text for s in found.evidence] == ["running", "drills"]


# --- Candidate selection of the fast engine (architecture.md section 9) --------------------


def _words(rng: random.Random, count: int) -> list[str]:
    seen: set[str] = set()
    while len(seen) < count:
        seen.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(6, 10))))
    return sorted(seen)


def _crowd(count: int = 1000, seed: int = 7, **fields: Any) -> list[tuple[str, WatchlistRule]]:
    """`count` rules, each with its own random-word aliases, none of which occur in articles."""
    rng = random.Random(seed)
    words = _words(rng, count * 2)
    return [
        (TENANT, make_rule(f"crowd-{i}", any=[words[2 * i], f"{words[2 * i + 1]} zz"], **fields))
        for i in range(count)
    ]


def _build(rules: list[tuple[str, WatchlistRule]]) -> Matcher:
    matcher, errors = Matcher.build(rules)
    assert errors == []
    return matcher


@pytest.fixture(scope="module")
def crowd_matcher() -> Matcher:
    """1,000 rules whose random words occur in no test article."""
    return _build(_crowd())


@pytest.mark.parametrize(("rule", "title", "body", "expect", "article_fields"), ALL_CASES)
def test_fast_engine_checks_no_rule_of_the_crowd(
    crowd_matcher: Matcher,
    rule: dict[str, Any],
    title: str,
    body: str,
    expect: list[Expected] | None,
    article_fields: dict[str, Any],
) -> None:
    # Every case again, with 1,000 unrelated rules beside its rule: the match is the same and
    # the candidates stay a handful (the exact count is checked on its own below).
    matcher, errors = crowd_matcher.updated([(TENANT, make_rule("r", **rule))])
    assert errors == []
    result = matcher.match(article(title, body, **article_fields))
    assert [m.rule_id for m in result.matches] == ([] if expect is None else ["r"])
    assert result.stats.candidates <= 3


@pytest.mark.parametrize(
    ("rule", "body"),
    [
        pytest.param({"any": ["china"]}, "China", id="alias-list"),
        pytest.param({"query": "china russia"}, "China Russia", id="and"),
        pytest.param({"query": "china NEAR/2 russia"}, "China Russia", id="near"),
        pytest.param({"query": "title:china"}, "", id="field"),
        pytest.param({"query": "china OR NOT russia"}, "nothing", id="no-trigger"),
        pytest.param({"any": ["china"], "languages": ["en"]}, "China", id="filtered"),
    ],
)
def test_candidates_never_exceed_the_rules_that_could_match(
    rule: dict[str, Any], body: str
) -> None:
    # One rule and a crowd that cannot match: exactly one candidate, the rule itself.
    matcher = _build([*_crowd(50), (TENANT, make_rule("r", **rule))])
    result = matcher.match(article(title="China", body=body, language="en"))
    assert [m.rule_id for m in result.matches] == ["r"]
    assert result.stats.candidates == 1


def test_candidates_are_few_among_a_thousand_phrase_rules() -> None:
    matcher = _build([*_crowd(), (TENANT, make_rule("li", any=["Li Shangfu", "李尚福"]))])
    result = matcher.match(article(body="Defence minister Li Shangfu will travel to Russia."))
    assert [m.rule_id for m in result.matches] == ["li"]
    assert result.stats.candidates <= 3


def test_candidates_are_few_among_a_thousand_stemmed_rules() -> None:
    target = make_rule("drills", any=["military drill"], stem=True)
    matcher = _build([*_crowd(stem=True), (TENANT, target)])
    result = matcher.match(article(body="Russia announced surprise military drills."))
    assert [m.rule_id for m in result.matches] == ["drills"]
    assert result.stats.candidates <= 3


def test_candidates_are_few_among_a_thousand_query_rules() -> None:
    rng = random.Random(11)
    words = _words(rng, 3000)
    rules = [
        (
            TENANT,
            make_rule(
                f"q-{i}",
                query=f"({words[3 * i]} OR {words[3 * i + 1][:5]}*) NEAR/3 {words[3 * i + 2]}",
            ),
        )
        for i in range(1000)
    ]
    rules.append((TENANT, make_rule("cr", query="(china OR beijing) NEAR/5 (russia OR moscow)")))
    result = _build(rules).match(article(body="Beijing and Moscow agreed on the talks."))
    assert [m.rule_id for m in result.matches] == ["cr"]
    assert result.stats.candidates <= 3


def test_an_and_rule_is_no_candidate_when_none_of_its_words_occur() -> None:
    rng = random.Random(3)
    words = _words(rng, 2000)
    rules = [
        (TENANT, make_rule(f"and-{i}", query=f"{words[2 * i]} AND {words[2 * i + 1]}"))
        for i in range(1000)
    ]
    result = _build(rules).match(article(title="Nothing relevant", body="at all, really."))
    assert result.matches == []
    assert result.stats.candidates == 0


def test_an_article_without_any_rule_words_has_no_candidates() -> None:
    result = _build(_crowd()).match(article(title="", body=""))
    assert result.matches == []
    assert result.stats.candidates == 0


@pytest.mark.parametrize(
    "query",
    ["china OR NOT russia", "NOT russia OR china", "(NOT russia) OR (china NEAR/2 japan)"],
)
def test_a_rule_without_trigger_is_a_candidate_on_every_article(query: str) -> None:
    matcher = _build([*_crowd(100), (TENANT, make_rule("open", query=query))])
    for text, expected in [("", ["open"]), ("Nothing relevant here", ["open"]), ("Russia", [])]:
        result = matcher.match(article(body=text))
        assert result.stats.candidates >= 1
        assert [m.rule_id for m in result.matches] == expected, text


# --- Nesting depth: rules.md sets no limit on it, so a deep query is a rule like any other ----


@pytest.mark.parametrize(
    ("query", "body", "matches"),
    [
        pytest.param("x " + "NOT " * 300 + "y", "x y", True, id="300-nots-even-holds"),
        pytest.param("x " + "NOT " * 300 + "y", "x", False, id="300-nots-even-fails"),
        pytest.param("x " + "NOT " * 301 + "y", "x", True, id="301-nots-odd-holds"),
        pytest.param("x " + "NOT " * 301 + "y", "x y", False, id="301-nots-odd-fails"),
        pytest.param("(" * 300 + "a" + ")" * 300, "a", True, id="300-parentheses"),
        # At the 4,096-character limit: as deep as a query can get.
        pytest.param("x " + "NOT " * 1022 + "y", "x", False, id="1022-nots-at-the-limit"),
        pytest.param("(" * 2000 + "a" + ")" * 2000, "a", True, id="2000-parentheses"),
    ],
)
def test_a_deeply_nested_query_is_accepted_and_evaluated(
    match: MatchFn, query: str, body: str, matches: bool
) -> None:
    result = match([{"query": query}], body=body)
    assert bool(result.matches) is matches
