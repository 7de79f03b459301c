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
from services.matcher.engine.normalize import analyze
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
        EvidenceWriter(("a b", ""), (([0, 2], [1]), ([], [])), names, 80)
    with pytest.raises(ValueError, match="not within the text's 3 characters"):
        EvidenceWriter(("a b", ""), (([0, 2], [1, 4]), ([], [])), names, 80)
    with pytest.raises(ValueError, match="not within"):
        EvidenceWriter(("a b", ""), (([2], [1]), ([], [])), names, 80)


def test_the_evidence_writer_refuses_a_translated_text_of_another_length() -> None:
    with pytest.raises(ValueError, match="body: the translated text is not as long"):
        EvidenceWriter(("", "Zürich"), ("", "zurich "), ("title", "body"), 80)


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


def _varied_rules() -> list[tuple[str, WatchlistRule]]:
    """Rules of every shape the core posts differently: outright alias lists, checked
    Booleans, second triggers, NEAR, NOT, prefixes, field scopes, filters, stems."""
    rules: list[tuple[str, WatchlistRule]] = []
    for n in range(12):
        rules += [
            _rule(f"alias{n}", any=[f"name{n}", "Li Shangfu", f"general {n % 3}"]),
            _rule(f"and{n}", query=f"(china OR beijing) AND drills{n % 4}"),
            _rule(f"near{n}", query=f"russia NEAR/{n % 6} (defence OR defense)"),
            _rule(f"not{n}", query=f"navy{n % 2} AND NOT exercise", fields=["body"]),
            _rule(f"prefix{n}", query=f"milit* AND (title:drill* OR body:unit{n})"),
            _rule(
                f"filtered{n}",
                any=["china"],
                languages=["en" if n % 2 else "de"],
                sources=["bbc.co.uk" if n % 3 else "reuters.com"],
            ),
            _rule(f"stemmed{n}", query="military drills", stem=True),
        ]
    return rules


ARTICLES = [
    ("China holds drills", "Beijing and Russia: defence drills0 drills1 near the navy0."),
    ("Military drill", "Li Shangfu, the general 1, spoke of militaries and an exercise."),
    ("", "name3 name7 navy1 russia says its defense is ready; drilling continues."),
    ("Nothing here", "An article about something else entirely."),
]


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_a_core_built_on_several_threads_scans_as_one_built_on_one(threads: int) -> None:
    # Each thread numbers its own run of rules; joining them must renumber keys, plans,
    # filters and postings exactly as one pass does.
    stemmer = Stemmer()
    compiled = [compile_rule(tenant, rule, stemmer) for tenant, rule in _varied_rules()]
    one, several = Core(compiled, threads=1), Core(compiled, threads=threads)
    assert one.literal_count == several.literal_count
    matches = 0
    for language, domain in [("en", "bbc.co.uk"), (None, None)]:
        for title, body in ARTICLES:
            texts = (analyze(title).scan_text, analyze(body).scan_text)
            scans = [core.scan(*texts, stemmer.cache, language, domain) for core in (one, several)]
            (scan_one, *found_one), (scan_several, *found_several) = scans
            assert found_one == found_several, (title, body)
            for index in found_one[0]:
                assert scan_one.evidence(index) == scan_several.evidence(index)
            matches += len(found_one[0])
    assert matches > 40  # the articles reach most shapes of rule
