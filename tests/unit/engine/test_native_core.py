"""The native core's own edges: what its memos and its packed token keys must not change.

The conformance suite and the properties hold the core to rules.md through `Matcher`; these
cases reach the parts of it that ordinary articles rarely touch.
"""

from __future__ import annotations

import pytest
from newsalert_native import Core, EvidenceWriter, StemCache

from schemas.watchlist import WatchlistRule
from services.matcher.engine.compile import _PlanBuilder, compile_rule, rule_ast, trigger_keys
from services.matcher.engine.matcher import Matcher
from services.matcher.engine.plan import BOTH, Lit
from services.matcher.engine.stemming import Stemmer
from tests.unit.engine.conftest import article


def _rule(rule_id: str, **fields: object) -> tuple[str, WatchlistRule]:
    return ("t", WatchlistRule.model_validate({"id": rule_id, "name": rule_id, **fields}))


def _matched(matcher: Matcher, title: str = "", body: str = "") -> list[str]:
    return [rule.rule_id for rule in matcher.match(article(title, body)).rules]


def test_tokens_longer_than_fifteen_bytes_match_like_short_ones() -> None:
    # Up to 15 bytes a token is packed into an integer key; longer ones take the other map.
    matcher, _ = Matcher.build(
        [
            _rule("long", any=["counterintelligence"]),
            _rule("mixed", any=["internationalisation of trade"]),
            _rule("exact15", any=["abcdefghijklmno"]),
            _rule("near16", any=["abcdefghijklmnop"]),
        ]
    )
    body = "Counterintelligence and the internationalisation of trade; abcdefghijklmno."
    assert _matched(matcher, body=body) == ["long", "mixed", "exact15"]
    assert _matched(matcher, body="abcdefghijklmnop") == ["near16"]
    assert _matched(matcher, body="abcdefghijklmnopq counterintelligencer") == []


def test_a_token_memo_overflowing_mid_article_still_answers_every_token() -> None:
    stemmer = Stemmer()
    compiled = [
        compile_rule("t", rule, stemmer)
        for _, rule in [
            _rule("raw", any=["kappa lambda"]),
            _rule("stemmed", query="drills", stem=True),
        ]
    ]
    # Room for three tokens: each article brings a new one to a memo already over the bound.
    core = Core(compiled, max_tokens=3)
    text = "alpha beta gamma delta epsilon zeta eta theta kappa lambda drilling"
    for new in ["one", "two", "three"]:
        _, matched, _, _ = core.scan(new, text, stemmer.cache, None, None)
        assert matched == [0, 1]


def test_a_stemming_ruleset_refuses_to_scan_without_stems() -> None:
    stemmer = Stemmer()
    compiled = compile_rule("t", _rule("s", query="drills", stem=True)[1], stemmer)
    core = Core([compiled])
    assert core.uses_stems
    with pytest.raises(ValueError, match="StemCache"):
        core.scan("", "drill", None, None, None)


@pytest.mark.parametrize("key", ["", "plain", " a  b ", "\x01a", "\x01\x01", " two words"])
def test_a_malformed_literal_key_is_refused_with_the_key(key: str) -> None:
    from newsalert_native import CompiledRule

    rule = _rule("r", any=["x"])[1]
    with pytest.raises(ValueError, match="key"):
        Core([CompiledRule("t", rule, "v", Lit(key, BOTH), [key], [key], True, [], [])])


def test_the_stem_cache_stems_once_and_stays_bounded() -> None:
    calls: list[str] = []

    def stem(token: str) -> str:
        calls.append(token)
        return token.rstrip("s")

    cache = StemCache(stem, max_entries=2)
    assert [cache.stem(t) for t in ["drills", "drills", "cats", "dogs", "dogs"]] == [
        "drill",
        "drill",
        "cat",
        "dog",
        "dog",
    ]
    assert calls == ["drills", "cats", "dogs"]
    assert len(cache) <= 2


def test_the_evidence_writer_refuses_offsets_that_do_not_fit_the_text() -> None:
    names = ("title", "body")
    with pytest.raises(ValueError, match="2 token starts but 1 ends"):
        EvidenceWriter(("a b", ""), ([0, 2], []), ([1], []), names, 80)
    with pytest.raises(ValueError, match="not within the text's 3 characters"):
        EvidenceWriter(("a b", ""), ([0, 2], []), ([1, 4], []), names, 80)
    with pytest.raises(ValueError, match="not within"):
        EvidenceWriter(("a b", ""), ([2], []), ([1], []), names, 80)


def test_the_evidence_writer_counts_offsets_in_characters_not_bytes() -> None:
    matcher, _ = Matcher.build([_rule("r", any=["zurich"])])
    result = matcher.match(article("", "Grüße aus Zürich"))
    [match] = result.matches
    assert match.evidence_json() == (
        '{"field":"body","start":10,"end":16,"text":"Zürich"}],"snippet":'
        '{"field":"body","text":"Grüße aus Zürich","match_start":10,"match_end":16}'
    )


def test_pick_takes_the_items_at_the_indices_and_refuses_one_out_of_range() -> None:
    from newsalert_native import pick

    items = [object() for _ in range(100)]
    indices = [3, 3, 0, 99, 42]
    assert pick(items, indices) == [items[i] for i in indices]
    assert pick(items, []) == []
    with pytest.raises(IndexError):
        pick(items, [1, 100])


@pytest.mark.parametrize(
    "query",
    ["alpha AND beta", "alpha NEAR/3 beta", "(alpha OR gamma) AND beta NOT delta"],
)
def test_a_rule_whose_other_side_is_absent_is_put_forward_but_never_matches(query: str) -> None:
    # The core evaluates such a rule only when a key of another necessary set occurs too;
    # what it reports (matches, and rules put forward by their trigger) is as if it had.
    stemmer = Stemmer()
    rule = _rule("r", query=query)[1]
    trigger = trigger_keys(_PlanBuilder(rule, stemmer).plan(rule_ast("t", rule))) or ()
    core = Core([compile_rule("t", rule, stemmer)])
    for title, body, matches in [
        ("", "alpha only here", False),
        ("", "beta only here", False),
        ("alpha", "beta", "NEAR" not in query),
        ("", "alpha and beta", True),
        ("", "gamma beta", query.startswith("(")),
        ("", "alpha beta delta", not query.startswith("(")),
    ]:
        _, matched, considered, _ = core.scan(title, body, stemmer.cache, None, None)
        assert matched == ([0] if matches else []), (title, body)
        tokens = f"{title} {body}".split()
        assert considered == int(any(key.strip() in tokens for key in trigger))
