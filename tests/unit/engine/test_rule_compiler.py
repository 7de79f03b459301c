"""The native rule compiler is a faster `compile_rule`, never a different one.

`RuleCompiler` compiles most rules in the native core (src/compile.rs, src/query.rs) and
leaves the rest to `compile_rule`, the definition. For every rule the native path takes, the
`CompiledRule` (identity, version, plan, trigger, keys, filters) must equal what `compile_rule`
makes; every rule that `compile_rule` refuses must be left to it, so that its error, with
the position, is the one the rule author sees.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from schemas.watchlist import WatchlistRule
from services.matcher.engine.compile import RuleCompiler, compile_rule
from services.matcher.engine.errors import RuleCompileError
from services.matcher.engine.stemming import Stemmer
from tests.unit.engine.conftest import PROPERTY
from tests.unit.engine.test_conformance import ALL_CASES
from tests.unit.engine.test_query_parser import DEEP_NOTS, DEEP_PARENS, ERRORS

STEMMER = Stemmer()
COMPILER = RuleCompiler(STEMMER)


def _native(rule: WatchlistRule) -> Any:
    """What the native path alone makes of `rule`: a CompiledRule, or None."""
    return COMPILER._native.compile([("t", rule)])[0]


def assert_same_as_compile_rule(rule: WatchlistRule, *, native_may_decline: bool) -> None:
    """The native path agrees with `compile_rule` on `rule`, or leaves it to it."""
    native = _native(rule)
    try:
        expected = compile_rule("t", rule, STEMMER)
    except RuleCompileError:
        assert native is None, f"the native path took a rule compile_rule refuses: {rule}"
        return
    if native is None:
        assert native_may_decline, f"the native path declined a valid rule: {rule}"
        return
    assert native == expected, f"{native!r} != {expected!r}"


def _rule(**fields: Any) -> WatchlistRule:
    return WatchlistRule.model_validate({"id": "r", "name": "r", **fields})


@pytest.mark.parametrize(("rule", "title", "body", "expect", "article_fields"), ALL_CASES)
def test_every_conformance_rule_compiles_alike_in_both_paths(
    rule: dict[str, Any], title: str, body: str, expect: Any, article_fields: Any
) -> None:
    for stem in (False, True):
        validated = _rule(**{"stem": stem, **rule})
        # Non-ASCII rules are Python's; the rest must be taken and agree.
        texts = [validated.query or "", *(validated.any or []), *validated.none]
        assert_same_as_compile_rule(
            validated, native_may_decline=not all(t.isascii() for t in texts)
        )


@pytest.mark.parametrize(("query", "marker", "words"), ERRORS)
def test_a_bad_query_is_left_to_compile_rule_which_reports_it(
    query: str, marker: str, words: list[str]
) -> None:
    # Built without validation: the schema itself refuses some of these (an empty query).
    rule = WatchlistRule.model_construct(id="r", name="r", query=query)
    assert _native(rule) is None
    with pytest.raises(RuleCompileError) as raised:
        COMPILER.compile("t", rule)
    assert raised.value.error.rule_id == "r"
    assert raised.value.error.position is not None


@pytest.mark.parametrize(
    ("query", "taken"),
    [
        pytest.param(DEEP_NOTS, True, id="300-nots"),
        pytest.param("x " + "NOT " * 1022 + "y", True, id="1022-nots"),
        pytest.param("(" * 64 + "a" + ")" * 64, True, id="64-parentheses"),
        pytest.param(DEEP_PARENS, False, id="300-parentheses"),
    ],
)
def test_deep_queries_compile_alike_and_very_deep_ones_are_left_to_python(
    query: str, taken: bool
) -> None:
    rule = _rule(query=query)
    assert (_native(rule) is not None) is taken
    assert_same_as_compile_rule(rule, native_may_decline=not taken)
    assert COMPILER.compile("t", rule) == compile_rule("t", rule, STEMMER)


def test_a_rule_with_non_ascii_text_is_compiled_by_python_all_the_same() -> None:
    rule = _rule(any=["Müller", "Li Shangfu"], none=["straße"])
    assert _native(rule) is None
    compiled = COMPILER.compile("t", rule)
    assert compiled == compile_rule("t", rule, STEMMER)
    assert compiled.version == rule.version()


def test_filters_and_presentation_reach_the_compiled_rule() -> None:
    rule = _rule(
        any=["china"],
        severity="high",
        tags=["asia"],
        languages=["en", "de", "en"],
        sources=["Reuters.com.", "bbc.co.uk"],
        fields=["title"],
    )
    compiled = COMPILER.compile("t", rule)
    assert compiled.languages == {"en", "de"}
    assert compiled.sources == ("reuters.com", "bbc.co.uk")
    assert compiled.version == rule.version()
    assert compiled == compile_rule("t", rule, STEMMER)


# Query pieces, ASCII only (the native path's domain), with the lexer's edge cases: operators
# in lower case, `-` alone and glued, `NEAR/n` with and without a following space, field
# prefixes, prefixes and misplaced stars, possessives, quotes, and Python's ASCII whitespace.
PIECES = [
    "china",
    "Russia's",
    "drills",
    "U.S.",
    "e-mail",
    "AND",
    "OR",
    "NOT",
    "and",
    "-",
    "-china",
    "(",
    ")",
    '"',
    '"military drills"',
    '"the"',
    "NEAR/3",
    "NEAR/0",
    "NEAR/101",
    "NEAR/3x",
    "NEAR/",
    "title:",
    "body:",
    "title:china",
    "mili*",
    "mi*",
    "*",
    "a*b",
    "'s",
    "x's'",
    "s'",
]
SPACES = [" ", "  ", "\t", "\n", "\x0b", "\x1c", ""]


WORDS = ["china", "japan", "Russia's", "drills", "U.S.", "e-mail", "x's'", "s'", "'s", "mili*"]
BINARY = [" AND ", " OR ", " ", " NEAR/3 ", " NEAR/0 ", "\tNEAR/12\n", " NEAR/101 ", " -"]


@st.composite
def soups(draw: st.DrawFn) -> str:
    """Pieces in any order: mostly invalid, which both paths must refuse alike."""
    parts = draw(st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(SPACES)), max_size=14))
    return "".join(piece + space for piece, space in parts)


def _atoms() -> st.SearchStrategy[str]:
    word = st.sampled_from(WORDS)
    phrase = st.lists(word, min_size=1, max_size=3).map(lambda ws: '"' + " ".join(ws) + '"')
    field = st.sampled_from(["", "", "title:", "body:"])
    return st.tuples(field, st.one_of(word, phrase)).map("".join)


def _compose(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(inner, st.sampled_from(BINARY), inner).map("".join)
    wrapped = st.tuples(st.sampled_from(["(", "NOT ", "-", "NOT NOT "]), inner).map(
        lambda t: f"{t[0]}{t[1]})" if t[0] == "(" else "".join(t)
    )
    return st.one_of(pair, wrapped)


def queries() -> st.SearchStrategy[str]:
    """Queries built from the grammar (mostly valid) or from loose pieces (mostly not)."""
    return st.one_of(st.recursive(_atoms(), _compose, max_leaves=8), soups())


@PROPERTY
@given(query=queries(), stem=st.booleans(), fields=st.sampled_from([["title", "body"], ["body"]]))
@example(query="(china OR beijing) NEAR/12 russia", stem=True, fields=["title", "body"])
@example(query="NOT NOT (NOT a) b", stem=False, fields=["title", "body"])
@example(query="a NEAR/2 (b OR title:c*)", stem=False, fields=["body"])
@example(query="x's's NEAR/4\x1c-y", stem=False, fields=["title", "body"])
@example(query="china NEAR/3 japan", stem=False, fields=["title", "body"])
@example(query="x's' AND drills", stem=False, fields=["title", "body"])
def test_any_ascii_query_compiles_alike_or_is_refused_by_both(
    query: str, stem: bool, fields: list[str]
) -> None:
    if not query.strip():
        return  # the schema refuses an empty query before compiling
    rule = _rule(query=query, stem=stem, fields=fields)
    assert_same_as_compile_rule(rule, native_may_decline=False)


PHRASES = ["China", "Li Shangfu", "military drills", "the U.S.'s", "'s", "e-mail", "AND", "-"]


@PROPERTY
@given(
    any_=st.lists(st.sampled_from(PHRASES), min_size=1, max_size=4),
    none=st.lists(st.sampled_from(PHRASES), max_size=3),
    stem=st.booleans(),
    languages=st.lists(st.sampled_from(["en", "de", "en-gb"]), max_size=2),
    sources=st.lists(st.sampled_from(["reuters.com", ".BBC.co.uk."]), max_size=2),
)
def test_any_phrase_list_compiles_alike_or_is_refused_by_both(
    any_: list[str], none: list[str], stem: bool, languages: list[str], sources: list[str]
) -> None:
    rule = _rule(any=any_, none=none, stem=stem, languages=languages, sources=sources)
    assert_same_as_compile_rule(rule, native_may_decline=False)


def _ruleset() -> list[tuple[str, WatchlistRule]]:
    """Stemmed and unstemmed rules, one Python compiles, one refused, one id given twice;
    enough of them to be read and compiled in several chunks at once (compile.rs)."""
    rules: list[tuple[str, WatchlistRule]] = []
    for n in range(400):
        rules.append(("t", _rule(id=f"any{n}", any=[f"word{n}", "military drills"], stem=n % 2)))
        rules.append(("u", _rule(id=f"q{n}", query=f"(china OR russia) NEAR/{n % 5} drills{n}")))
    rules.append(("t", _rule(id="accents", any=["Müller"])))
    rules.append(("t", _rule(id="bad", query="china AND")))
    rules.append(("t", _rule(id="any0", any=["edited"])))  # the same key again: the later wins
    return rules


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_a_ruleset_compiles_the_same_on_one_thread_and_on_several(threads: int) -> None:
    one: dict[tuple[str, str], Any] = {}
    several: dict[tuple[str, str], Any] = {}
    alone, together = RuleCompiler(Stemmer()), RuleCompiler(Stemmer())  # cold stem memos
    errors_one = alone._native.compile_into(one, _ruleset(), alone._fallback, 1)
    errors_several = together._native.compile_into(several, _ruleset(), together._fallback, threads)
    assert list(one) == list(several)
    assert all(one[key] == several[key] for key in one)
    assert errors_one == errors_several
    assert [e.rule_id for e in errors_one] == ["bad"]
    assert one[("t", "any0")].rule.any == ["edited"]
    assert one[("t", "accents")] == compile_rule("t", _rule(id="accents", any=["Müller"]), STEMMER)


@pytest.mark.parametrize("threads", [1, 2])
def test_an_error_while_rules_are_read_or_stored_stops_the_build_and_is_raised(
    threads: int,
) -> None:
    # Rules are compiled while others are still being read, and stored meanwhile: an error
    # on either side must come out as itself, with every compiling thread stopped.
    def failing_upserts() -> Any:
        yield from _ruleset()[:700]
        raise LookupError("the rules topic went away")

    compiler = RuleCompiler(Stemmer())
    with pytest.raises(LookupError, match="went away"):
        compiler._native.compile_into({}, failing_upserts(), compiler._fallback, threads)

    def failing_fallback(tenant: str, rule: WatchlistRule) -> Any:
        raise LookupError(f"no fallback for {rule.id}")

    with pytest.raises(LookupError, match="no fallback for accents"):
        compiler._native.compile_into({}, _ruleset(), failing_fallback, threads)


def test_compiling_into_a_ruleset_skips_unchanged_rules_and_keeps_a_refused_edit_s_rule() -> None:
    rules: dict[tuple[str, str], Any] = {}
    COMPILER.compile_into(rules, [("t", _rule(id="r", any=["china"]))])
    before = rules[("t", "r")]
    assert COMPILER.compile_into(rules, [("t", _rule(id="r", any=["china"]))]) == []
    assert rules[("t", "r")] is before  # unchanged: not compiled again
    [error] = COMPILER.compile_into(rules, [("t", _rule(id="r", query="NOT china"))])
    assert error.rule_id == "r"
    assert rules[("t", "r")] is before
