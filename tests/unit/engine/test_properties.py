"""Properties of rules.md that hold for every rule and every text, searched with Hypothesis.

Rules and articles are built from one small vocabulary, so that random rules actually match
random articles, with the spellings that text analysis must see through (case, composed and
decomposed accents, fullwidth letters, soft hyphens, zero-width characters, possessives) and
the separators it must split on.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from hypothesis import assume, example, given
from hypothesis import strategies as st
from newsalert_native import token_offsets

from schemas.article import Article
from schemas.watchlist import WatchlistRule
from services.matcher.engine.matcher import Matcher, MatchResult
from services.matcher.engine.normalize import analyze
from services.matcher.engine.reference import ReferenceMatcher
from tests.unit.engine.conftest import ENGINES, PROPERTY, TENANT, article, make_rule

VOCAB = [
    "china",
    "russia",
    "moscow",
    "beijing",
    "drill",
    "drills",
    "drilling",
    "military",
    "militia",
    "li",
    "shangfu",
    "defence",
    "run",
    "running",
    "happy",
    "cafe",
    "us",
    "s",
    "t",
    "and",
    "not",
    "straße",
    "李",
    "福",
]
OPERATOR_WORDS = {"and", "or", "not"}
SEPARATORS = [" ", "  ", ", ", "-", ". ", "\n", "’s ", "'s, ", " (", ") ", "/", " — "]
FULLWIDTH_OFFSET = 0xFEE0
ACCENTED = {"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü", "c": "ç", "n": "ñ", "s": "ś"}


def _accent_composed(word: str) -> str:
    return "".join(ACCENTED.get(c, c) for c in word)


def _accent_decomposed(word: str) -> str:
    return unicodedata.normalize("NFD", _accent_composed(word))


def _fullwidth(word: str) -> str:
    return "".join(
        chr(ord(c) + FULLWIDTH_OFFSET) if c.isascii() and c.isalnum() else c for c in word
    )


def _inside(char: str) -> Callable[[str], str]:
    def insert(word: str) -> str:
        middle = len(word) // 2
        return word[:middle] + char + word[middle:] if middle else word

    return insert


def _possessive(word: str) -> str:
    return word + "’s"


# Spellings that analysis folds to the word itself (rules.md section 2).
SPELLINGS: list[Callable[[str], str]] = [
    str.upper,
    str.capitalize,
    _accent_composed,
    _accent_decomposed,
    _fullwidth,
    _inside("\u00ad"),
    _inside("\u200b"),
    _inside("\ufeff"),
    _possessive,
]


@st.composite
def spelled(draw: st.DrawFn, word: str) -> str:
    """`word` in 0..2 spellings that analysis must see through."""
    for spell in draw(st.lists(st.sampled_from(SPELLINGS), max_size=2)):
        word = spell(word)
    return word


words = st.sampled_from(VOCAB)
long_words = st.sampled_from([w for w in VOCAB if len(w) >= 3])


@st.composite
def texts(draw: st.DrawFn, max_words: int = 12) -> str:
    parts = []
    for _ in range(draw(st.integers(0, max_words))):
        parts.append(draw(spelled(draw(words))))
        parts.append(draw(st.sampled_from(SEPARATORS)))
    return "".join(parts)


@st.composite
def plain_words(draw: st.DrawFn, max_words: int = 12) -> list[tuple[str, str]]:
    """(word, separator) pairs: a text that can be respelled word by word."""
    return draw(
        st.lists(st.tuples(words, st.sampled_from(SEPARATORS)), max_size=max_words),
    )


# --- Random queries --------------------------------------------------------------------------


def _query_word(word: str, spell: Callable[[str], str] | None) -> str:
    # An upper-case "and"/"not" would be an operator, not the word.
    if spell is None or word in OPERATOR_WORDS:
        return word
    return spell(word)


@st.composite
def bare_atoms(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["term", "term", "phrase", "prefix"]))
    spell = draw(st.none() | st.sampled_from([str.upper, _accent_composed, _fullwidth]))
    if kind == "term":
        return _query_word(draw(words), spell)
    if kind == "phrase":
        phrase = draw(st.lists(words, min_size=2, max_size=3))
        return '"' + " ".join(_query_word(w, spell) for w in phrase) + '"'
    word = draw(long_words)
    return word[: draw(st.integers(3, len(word)))] + "*"


@st.composite
def atoms(draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(["", "", "", "title:", "body:"]))
    return field + draw(bare_atoms())


@st.composite
def near_operands(draw: st.DrawFn) -> str:
    alternatives = draw(st.lists(atoms(), min_size=1, max_size=3))
    if len(alternatives) == 1:
        return alternatives[0]
    return "(" + " OR ".join(alternatives) + ")"


@st.composite
def nears(draw: st.DrawFn) -> str:
    distance = draw(st.integers(0, 6))
    return f"{draw(near_operands())} NEAR/{distance} {draw(near_operands())}"


# Every form keeps a positive atom first, so a random query is never refused as all negation;
# `OR NOT` still yields rules without a trigger.
FORMS = [
    "({0} OR {1})",
    "{0} {1}",
    "({0}) AND ({1})",
    "{0} NOT ({1})",
    "{0} -{2}",
    "({0} OR NOT {1})",
]


@st.composite
def queries(draw: st.DrawFn, depth: int = 2) -> str:
    """A random valid query of at most `depth` levels of Boolean operators."""
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(nears() if draw(st.integers(0, 3)) == 0 else atoms())
    form = draw(st.sampled_from(FORMS))
    left = draw(queries(depth - 1))
    right = draw(queries(depth - 1)) if "{1}" in form else ""
    atom = draw(atoms()) if "{2}" in form else ""
    return form.format(left, right, atom)


@st.composite
def rule_fields(draw: st.DrawFn, rule_id: str = "r") -> dict[str, Any]:
    fields: dict[str, Any] = {"id": rule_id}
    if draw(st.booleans()):
        fields["query"] = draw(queries())
    else:
        phrases = st.lists(st.lists(words, min_size=1, max_size=3), min_size=1, max_size=3)
        fields["any"] = [" ".join(phrase) for phrase in draw(phrases)]
    if draw(st.booleans()):
        fields["none"] = [
            " ".join(p) for p in draw(st.lists(st.lists(words, min_size=1, max_size=2), max_size=2))
        ]
    fields["stem"] = draw(st.booleans())
    fields["fields"] = draw(st.sampled_from([["title", "body"], ["title"], ["body"]]))
    return fields


@st.composite
def rulesets(draw: st.DrawFn) -> list[tuple[str, WatchlistRule]]:
    count = draw(st.integers(1, 4))
    rules = []
    for index in range(count):
        fields = draw(rule_fields(f"r{index}"))
        tenant = draw(st.sampled_from([TENANT, "other"]))
        rule_id = fields.pop("id")
        rules.append((tenant, make_rule(rule_id, **fields)))
    return rules


def _compiles(rules: list[tuple[str, WatchlistRule]]) -> bool:
    return Matcher.build(rules)[1] == []


def _valid(rules: list[tuple[str, WatchlistRule]]) -> list[tuple[str, WatchlistRule]]:
    """The rules that compile (a random query may be all negation, which rules.md refuses)."""
    return [pair for pair in rules if _compiles([pair])]


def _outcome(result: MatchResult) -> dict[tuple[str, str], Any]:
    return {(m.tenant, m.rule_id): (list(m.evidence), m.snippet) for m in result.matches}


def _matched(result: MatchResult) -> set[tuple[str, str]]:
    return {(m.tenant, m.rule_id) for m in result.matches}


def _run(engine: str, rules: list[tuple[str, WatchlistRule]], item: Article) -> MatchResult:
    return ENGINES[engine](rules)(item)


# --- Properties ------------------------------------------------------------------------------


@PROPERTY
@given(rules=rulesets(), title=texts(max_words=5), body=texts())
def test_fast_matcher_agrees_with_the_reference(
    rules: list[tuple[str, WatchlistRule]], title: str, body: str
) -> None:
    fast, errors = Matcher.build(rules)
    reference = ReferenceMatcher(rules)
    assert [(e.tenant, e.rule_id, e.where) for e in errors] == [
        (e.tenant, e.rule_id, e.where) for e in reference.errors
    ]
    item = article(title, body)
    assert _outcome(fast.match(item)) == _outcome(reference.match(item))


@PROPERTY
@given(rules=rulesets(), title=texts(max_words=5), body=texts())
def test_evidence_text_is_the_original_slice(
    rules: list[tuple[str, WatchlistRule]], title: str, body: str
) -> None:
    fields = {"title": title, "body": body}
    for engine in ENGINES:
        for found in _run(engine, _valid(rules), article(title, body)).matches:
            keys = [(0 if s.field == "title" else 1, s.start) for s in found.evidence]
            assert keys == sorted(keys), engine
            assert len(set(found.evidence)) == len(found.evidence), engine
            for span in found.evidence:
                assert 0 <= span.start < span.end <= len(fields[span.field]), engine
                assert span.text == fields[span.field][span.start : span.end], engine
            if found.snippet is not None:
                first = found.evidence[0]
                shown = found.snippet.text[found.snippet.match_start : found.snippet.match_end]
                assert shown == first.text.replace("\n", " "), engine


@PROPERTY
@given(rule=rule_fields(), in_title=st.booleans(), text=plain_words(), data=st.data())
def test_case_and_accents_do_not_change_what_matches(
    rule: dict[str, Any], in_title: bool, text: list[tuple[str, str]], data: st.DataObject
) -> None:
    rule_id = rule.pop("id")
    rules = [(TENANT, make_rule(rule_id, **rule))]
    assume(_compiles(rules))
    plain = "".join(w + sep for w, sep in text)
    respelled = "".join(data.draw(spelled(w)) + sep for w, sep in text)
    fields = ("title", "body") if in_title else ("body", "title")

    def outcome(engine: str, value: str) -> list[tuple[str, int]]:
        result = _run(engine, rules, article(**{fields[0]: value, fields[1]: "x"}))
        return [(m.rule_id, len(m.evidence)) for m in result.matches]

    for engine in ENGINES:
        assert outcome(engine, plain) == outcome(engine, respelled), engine


@PROPERTY
@given(left=queries(), right=queries(), stem=st.booleans(), title=texts(5), body=texts())
def test_a_and_b_never_matches_where_a_does_not(
    left: str, right: str, stem: bool, title: str, body: str
) -> None:
    both = [(TENANT, make_rule("both", query=f"({left}) AND ({right})", stem=stem))]
    alone = [(TENANT, make_rule("alone", query=f"({left})", stem=stem))]
    assume(_compiles(both) and _compiles(alone))
    item = article(title, body)
    for engine in ENGINES:
        if _run(engine, both, item).matches:
            assert _run(engine, alone, item).matches, engine


@PROPERTY
@given(
    left=near_operands(),
    right=near_operands(),
    distance=st.integers(0, 8),
    stem=st.booleans(),
    title=texts(5),
    body=texts(),
)
def test_near_n_implies_near_n_plus_1(
    left: str, right: str, distance: int, stem: bool, title: str, body: str
) -> None:
    def rule(n: int) -> list[tuple[str, WatchlistRule]]:
        return [(TENANT, make_rule("near", query=f"{left} NEAR/{n} {right}", stem=stem))]

    item = article(title, body)
    for engine in ENGINES:
        if _run(engine, rule(distance), item).matches:
            assert _run(engine, rule(distance + 1), item).matches, engine


@PROPERTY
@given(left=near_operands(), right=near_operands(), distance=st.integers(0, 8), body=texts())
def test_near_is_symmetric(left: str, right: str, distance: int, body: str) -> None:
    def outcome(engine: str, query: str) -> set[tuple[str, int, int]]:
        rules = [(TENANT, make_rule("near", query=query))]
        return {
            (s.field, s.start, s.end)
            for m in _run(engine, rules, article("", body)).matches
            for s in m.evidence
        }

    for engine in ENGINES:
        forward = outcome(engine, f"{left} NEAR/{distance} {right}")
        assert forward == outcome(engine, f"{right} NEAR/{distance} {left}"), engine


# --- Text analysis ---------------------------------------------------------------------------

# Characters of news text: Latin with accents and combining marks, fullwidth forms, the
# ignored characters, apostrophes, CJK and kana, Hangul syllables, digits and punctuation.
NEWS_CHARS = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list("áéíóúüöäçñßİıŞşĞğ")
    + ["\u0301", "\u0308", "\u0327"]
    + list("ＣＨＩＮＡｃｈｉｎａ０１２")
    + ["\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
    + ["'", "’", "s"]
    + list("李尚福中国東京ロシアカタひらがな서울시")
    + list(' \n\t.,;:-–—()[]"“”!?/&%$')
)
news_texts = st.text(NEWS_CHARS, max_size=60)

_SOLO_NAMES = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA", "KATAKANA")


def _is_solo(char: str) -> bool:
    name = unicodedata.name(char, "")
    return name.startswith(_SOLO_NAMES) or name.startswith("HANGUL SYLLABLE")


def _is_word(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LM" or category == "Nd"


def reference_tokens(text: str) -> list[str]:
    """rules.md section 2, steps 1-4, written out plainly over the whole text (no offsets)."""
    for ignored in "\u00ad\u200b\u200c\u200d\u2060\ufeff":
        text = text.replace(ignored, "")
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(
        c for c in unicodedata.normalize("NFKD", text) if unicodedata.category(c) != "Mn"
    )
    text = unicodedata.normalize("NFC", text)
    tokens: list[str] = []
    word = ""

    def flush() -> None:
        nonlocal word
        for index, piece in enumerate(word.replace("’", "'").split("'")):
            if piece and not (index > 0 and piece == "s"):
                tokens.append(piece)
        word = ""

    for char in text:
        if _is_word(char) and _is_solo(char):
            flush()
            tokens.append(char)
        elif _is_word(char) or char in "'’":
            word += char
        else:
            flush()
    flush()
    return tokens


@PROPERTY
@given(text=st.text(max_size=80) | news_texts)
def test_analyze_offsets_are_within_the_text_and_in_order(text: str) -> None:
    stream = analyze(text)
    assert len(stream.tokens) == len(stream.starts) == len(stream.ends)
    for token, start, end in zip(stream.tokens, stream.starts, stream.ends, strict=True):
        assert token
        assert 0 <= start < end <= len(text)
    assert stream.starts == sorted(stream.starts)
    assert stream.ends == sorted(stream.ends)


@PROPERTY
@given(text=st.text(st.sampled_from(" a\u00e9\u4e2d\U0001f600"), max_size=40) | news_texts)
def test_native_token_offsets_locate_every_run_of_non_spaces(text: str) -> None:
    starts, ends = token_offsets(text)
    # Put each located token back into a blank line of the text's length: only the text
    # itself comes out, so no run is missed, split, or misplaced (offsets in code points).
    rebuilt = [" "] * len(text)
    for start, end in zip(starts, ends, strict=True):
        assert start < end
        assert " " not in text[start:end]
        rebuilt[start:end] = text[start:end]
    assert "".join(rebuilt) == text
    assert len(starts) == len([part for part in text.split(" ") if part])


@PROPERTY
@given(text=news_texts)
def test_analyze_tokens_of_news_text_do_not_overlap(text: str) -> None:
    stream = analyze(text)
    for end, next_start in zip(stream.ends, stream.starts[1:], strict=False):
        assert end <= next_start


@PROPERTY
@given(text=news_texts)
# Ignored characters and combining marks vanish before the possessive rule applies (step 3
# before step 4), so none of them may keep a possessive `s` alive.
@example(text="China'\u00ads army")
@example(text="China’s\u200b army")
@example(text="China’s\u0301 army")
@example(text="China'\ufeffs")
def test_analyze_yields_the_tokens_rules_md_describes(text: str) -> None:
    assert analyze(text).tokens == reference_tokens(text)


@PROPERTY
@given(text=news_texts)
def test_a_token_quoted_alone_analyses_to_itself(text: str) -> None:
    stream = analyze(text)
    for token, start, end in zip(stream.tokens, stream.starts, stream.ends, strict=True):
        assert analyze(text[start:end]).tokens == [token]


@PROPERTY
@given(word=words, data=st.data())
def test_analyze_sees_through_every_spelling(word: str, data: st.DataObject) -> None:
    assert analyze(data.draw(spelled(word))).tokens == reference_tokens(word)
