"""rules.md section 3: the query grammar, its limits, and errors that say where and what.

An error case names the spot with a marker: the 1-based position of the marker's first
occurrence in the query (`"$"` stands for the end of the query), and words the message must
contain, so that a rule author learns what was expected there.
"""

from __future__ import annotations

import json

import pytest

from services.matcher.engine.loading import parse_watchlist
from services.matcher.engine.matcher import Matcher
from services.matcher.engine.query import And, Near, Node, Not, Or, Phrase, Prefix, Term
from services.matcher.engine.query_parser import QuerySyntaxError, parse_query
from services.matcher.engine.reference import ReferenceMatcher
from tests.unit.engine.conftest import make_rule


def _position(query: str, marker: str) -> int:
    if marker == "$":
        return len(query) + 1
    assert marker in query, "bad test case"
    return query.index(marker) + 1


# --- Errors ------------------------------------------------------------------------------

ERRORS = [
    pytest.param('"china', '"', ['"'], id="unterminated-quote-alone"),
    pytest.param('china AND "russia', '"', ['"'], id="unterminated-quote-after-term"),
    pytest.param("(China OR", "$", ["expected", "end of the query"], id="open-paren-and-or"),
    pytest.param("(china", "$", ["expected", "')'"], id="missing-close-paren"),
    pytest.param("a OR", "$", ["expected", "term"], id="or-without-right-side"),
    pytest.param("a AND", "$", ["expected", "term"], id="and-without-right-side"),
    pytest.param("a OR OR b", "OR b", ["expected", "'OR'"], id="or-twice"),
    pytest.param("AND a", "AND", ["expected", "'AND'"], id="leading-and"),
    pytest.param("NOT", "$", ["expected"], id="not-without-operand"),
    pytest.param(")", ")", ["expected", "')'"], id="lone-close-paren"),
    pytest.param("china)", ")", ["expected", "end of the query"], id="extra-close-paren"),
    pytest.param("()", ")", ["expected"], id="empty-parens"),
    pytest.param("", "$", ["expected"], id="empty-query"),
    pytest.param("   ", "$", ["expected"], id="blank-query"),
    pytest.param("a NEAR/101 b", "NEAR/101", ["100"], id="near-over-100"),
    pytest.param("a NEAR/3", "$", ["expected"], id="near-without-right-operand"),
    pytest.param("a NEAR/2 b NEAR/3 c", "NEAR/3", ["NEAR", "chain"], id="chained-near-is-refused"),
    pytest.param("(a AND b) NEAR/3 c", "(", ["NEAR", "OR of atoms"], id="near-operand-and"),
    pytest.param("a NEAR/3 (b c)", "(", ["NEAR", "OR of atoms"], id="near-right-operand-and"),
    pytest.param(
        "(a OR (b c)) NEAR/3 d", "(", ["NEAR", "OR of atoms"], id="near-operand-nested-and"
    ),
    pytest.param("a NEAR/3 NOT b", "NOT", ["expected"], id="near-operand-not"),
    pytest.param("ab*", "ab*", ["prefix", "3"], id="prefix-of-two-chars"),
    pytest.param("china ab*", "ab*", ["prefix", "3"], id="prefix-of-two-chars-after-term"),
    pytest.param("*", "*", ["prefix"], id="star-alone"),
    pytest.param("mi*l*", "mi*l*", ["*"], id="star-inside-prefix"),
    pytest.param("mil*itary", "mil*itary", ["*"], id="star-inside-term"),
    pytest.param("U.S.", "U.S.", ["quote"], id="bare-dotted-term-must-be-quoted"),
    pytest.param("china indo-pacific", "indo-pacific", ["quote"], id="bare-hyphenated-term"),
    pytest.param("李尚福", "李尚福", ["quote"], id="bare-cjk-name-must-be-quoted"),
    pytest.param("china ...", "...", ["word"], id="term-without-word"),
    pytest.param("a near/2 b", "near/2", ["quote"], id="lower-case-near-is-not-an-operator"),
    pytest.param("title:(a)", "(", ["expected", "field"], id="field-before-paren"),
    pytest.param("title:", "$", ["expected", "field"], id="field-without-atom"),
    pytest.param("title:NOT a", "NOT", ["expected", "field"], id="field-before-not"),
    pytest.param('china ""', '""', ["no words"], id="empty-phrase"),
    pytest.param('china "..."', '"..."', ["no words"], id="phrase-of-punctuation"),
    pytest.param(
        '"' + " ".join(f"w{i}" for i in range(17)) + '"',
        '"',
        ["16"],
        id="phrase-over-16-tokens",
    ),
]


@pytest.mark.parametrize(("query", "marker", "words"), ERRORS)
def test_a_bad_query_names_the_position_and_what_was_expected(
    query: str, marker: str, words: list[str]
) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert caught.value.position == _position(query, marker)
    for word in words:
        assert word.lower() in caught.value.message.lower()
    assert f"position {caught.value.position}" in str(caught.value)


def test_more_than_256_atoms_is_refused_at_the_257th() -> None:
    words = [f"w{i:03d}" for i in range(257)]
    query = " OR ".join(words)
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert caught.value.position == query.index("w256") + 1
    assert "256" in caught.value.message


def test_256_atoms_are_allowed() -> None:
    parse_query(" OR ".join(f"w{i:03d}" for i in range(256)))


def test_atoms_under_near_and_not_count_towards_the_limit() -> None:
    query = (
        " ".join(f"(a{i} NEAR/2 b{i})" for i in range(100))
        + " "
        + " ".join(f"-n{i}" for i in range(57))
    )
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert caught.value.position == query.index("n56") + 1


def test_a_query_over_4096_characters_is_refused() -> None:
    query = '"' + "x" * 4095 + '"'
    assert len(query) == 4097
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert caught.value.position == 4097
    assert "4096" in caught.value.message.replace(",", "")


def test_a_query_of_4096_characters_is_allowed() -> None:
    query = '"' + "x" * 4094 + '"'
    assert len(query) == 4096
    assert parse_query(query) == Term("x" * 4094)


@pytest.mark.parametrize("distance", [0, 1, 12, 100])
def test_near_distance_from_0_to_100_is_allowed(distance: int) -> None:
    assert parse_query(f"a NEAR/{distance} b") == Near(Term("a"), Term("b"), distance)


@pytest.mark.parametrize(
    "query", ["NOT x", "-x", "NOT (a OR b)", "NOT a NOT b", "-a -b", "NOT NOT NOT x"]
)
def test_a_query_without_positive_atom_is_refused_at_compile(query: str) -> None:
    parse_query(query)  # the grammar allows it ...
    matcher, errors = Matcher.build([("t", make_rule("neg", query=query))])  # ... the rule not
    assert len(matcher) == 0
    [error] = errors
    assert (error.tenant, error.rule_id, error.where) == ("t", "neg", "query")
    assert error.position is not None
    assert error.position >= 1
    assert [
        (e.rule_id, e.where)
        for e in ReferenceMatcher([("t", make_rule("neg", query=query))]).errors
    ] == [("neg", "query")]


def test_a_query_without_positive_atom_is_refused_when_loading() -> None:
    loaded = parse_watchlist(
        "rules:\n"
        "  - {id: neg, name: Neg, query: 'NOT x'}\n"
        "  - {id: pos, name: Pos, query: 'y NOT x'}\n"
    )
    assert [r.id for r in loaded.rules] == ["pos"]
    [error] = loaded.errors
    assert (error.rule_id, error.where) == ("neg", "query")
    assert error.position is not None


def test_a_query_error_reaches_the_rule_error_with_its_position() -> None:
    query = "china AND (russia OR"
    _, errors = Matcher.build([("acme", make_rule("cr", query=query))])
    [error] = errors
    assert (error.tenant, error.rule_id, error.where) == ("acme", "cr", "query")
    assert error.position == len(query) + 1
    assert "expected" in error.message
    assert "acme/cr" in str(error)
    assert f"position {len(query) + 1}" in str(error)


# --- Grammar and binding order ----------------------------------------------------------

a, b, c, d = Term("a"), Term("b"), Term("c"), Term("d")

GRAMMAR: list[tuple[str, Node]] = [
    ("a", a),
    ("((a))", a),
    ("a b", And((a, b))),
    ("a AND b", And((a, b))),
    ("a b c", And((a, b, c))),
    ("a and b", And((a, Term("and"), b))),
    ("a or b", And((a, Term("or"), b))),
    ("a not b", And((a, Term("not"), b))),
    ("a OR b", Or((a, b))),
    ("a b OR c", Or((And((a, b)), c))),
    ("a OR b c", Or((a, And((b, c))))),
    ("a AND b OR c AND d", Or((And((a, b)), And((c, d))))),
    ("a (b OR c)", And((a, Or((b, c))))),
    ("NOT a b", And((Not(a), b))),
    ("a NOT b", And((a, Not(b)))),
    ("a -b", And((a, Not(b)))),
    ("-a b", And((Not(a), b))),
    ("a - b", And((a, Not(b)))),
    ("NOT a OR b", Or((Not(a), b))),
    ("NOT NOT a", Not(Not(a))),
    ("NOT a NEAR/2 b", Not(Near(a, b, 2))),
    ("a NEAR/2 b c", And((Near(a, b, 2), c))),
    ("a NEAR/2 b OR c", Or((Near(a, b, 2), c))),
    ("c OR a NEAR/2 b", Or((c, Near(a, b, 2)))),
    ("(a OR b) NEAR/3 (c OR d)", Near(Or((a, b)), Or((c, d)), 3)),
    ("title:a", Term("a", "title")),
    ("body:a", Term("a", "body")),
    ("title:a NEAR/2 b", Near(Term("a", "title"), b, 2)),
    ("title:a b", And((Term("a", "title"), b))),
    ("NOT title:a b", And((Not(Term("a", "title")), b))),
    ("title:a OR body:b", Or((Term("a", "title"), Term("b", "body")))),
    ('title:"li shangfu"', Phrase(("li", "shangfu"), "title")),
    ("body:milit*", Prefix("milit", "body")),
    ('"li shangfu"', Phrase(("li", "shangfu"))),
    ('"U.S."', Phrase(("u", "s"))),
    ('"Indo-Pacific"', Phrase(("indo", "pacific"))),
    ('"李尚福"', Phrase(("李", "尚", "福"))),
    ("milit*", Prefix("milit")),
    ("MILIT*", Prefix("milit")),
    ("Café", Term("cafe")),
    ("China's", Term("china")),
    ("ＣＨＩＮＡ", Term("china")),
    ("abc*", Prefix("abc")),
    ("a\tNEAR/0\nb", Near(a, b, 0)),
]


@pytest.mark.parametrize(("query", "tree"), GRAMMAR, ids=[q for q, _ in GRAMMAR])
def test_query_parses_with_rules_md_binding_order(query: str, tree: Node) -> None:
    assert parse_query(query) == tree


def test_one_word_phrase_matches_like_a_term() -> None:
    # Whether the parser keeps a one-word phrase as a phrase is its own affair; it must be
    # the same single token either way.
    tree = parse_query('"China"')
    tokens = (tree.token,) if isinstance(tree, Term) else tree.tokens  # type: ignore[union-attr]
    assert tokens == ("china",)


def test_a_phrase_of_16_tokens_is_allowed() -> None:
    words = tuple(f"w{i}" for i in range(16))
    assert parse_query('"' + " ".join(words) + '"') == Phrase(words)


# --- Deep nesting: the grammar has no depth limit, and rules.md names none ---------------------

DEEP_NOTS = "x " + "NOT " * 300 + "y"  # 1,203 characters, 2 atoms: within every limit
DEEP_PARENS = "(" * 300 + "a" + ")" * 300  # 601 characters, 1 atom


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        pytest.param(DEEP_PARENS, a, id="300-nested-parentheses"),
        pytest.param(
            "x " + "NOT " * 4 + "y", And((Term("x"), Not(Not(Not(Not(Term("y"))))))), id="4-nots"
        ),
    ],
)
def test_deeply_nested_queries_parse(query: str, tree: Node) -> None:
    assert parse_query(query) == tree


@pytest.mark.parametrize("query", [DEEP_NOTS, DEEP_PARENS], ids=["300-nots", "300-parentheses"])
def test_a_deeply_nested_query_never_breaks_the_build(query: str) -> None:
    # Whatever the engine makes of it, one rule must not take the ruleset down with it.
    rules = [("t", make_rule("deep", query=query)), ("t", make_rule("plain", any=["china"]))]
    matcher, errors = Matcher.build(rules)
    assert "plain" in {r.rule_id for r in matcher.rules()}
    for error in errors:
        assert (error.rule_id, error.where) == ("deep", "query")
        assert error.position is not None
    reference = ReferenceMatcher(rules)
    assert [(e.rule_id, e.where) for e in reference.errors] == [
        (e.rule_id, e.where) for e in errors
    ]


@pytest.mark.parametrize("query", [DEEP_NOTS, DEEP_PARENS], ids=["300-nots", "300-parentheses"])
def test_a_deeply_nested_query_never_breaks_loading(query: str) -> None:
    document = {
        "rules": [
            {"id": "deep", "name": "Deep", "query": query},
            {"id": "plain", "name": "Plain", "any": ["china"]},
        ]
    }
    loaded = parse_watchlist(json.dumps(document))
    assert "plain" in {r.id for r in loaded.rules}
    for error in loaded.errors:
        assert (error.rule_id, error.where) == ("deep", "query")
        assert error.position is not None
