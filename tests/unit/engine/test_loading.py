"""Watchlist files (rules.md section 1): YAML or JSON, one bad rule never sinks the others."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.matcher.engine.errors import RuleError
from services.matcher.engine.loading import parse_watchlist

GOOD = [
    {"id": "li-shangfu", "name": "Li Shangfu", "severity": "high", "any": ["Li Shangfu"]},
    {"id": "drills", "name": "Drills", "stem": True, "any": ["military drill"], "none": ["fire"]},
    {"id": "cr", "name": "China-Russia", "query": "china NEAR/5 russia", "fields": ["body"]},
]

YAML = """\
tenant: acme
rules:
  - id: li-shangfu
    name: Li Shangfu
    severity: high
    tags: [people, china]
    any: ["Li Shangfu", "李尚福"]
  - id: drills
    name: Drills
    stem: true
    any: ["military drill"]
    none: ["fire drill"]
  - id: cr
    name: China-Russia
    query: '(China OR Beijing) NEAR/12 (Russia OR Moscow) AND (defense OR military)'
    fields: [title, body]
    languages: [en]
    sources: [reuters.com]
"""


def _document(rules: list[dict[str, Any]], **top: Any) -> str:
    return json.dumps({**top, "rules": rules})


def test_a_yaml_watchlist_loads_every_rule() -> None:
    loaded = parse_watchlist(YAML)
    assert loaded.errors == []
    assert loaded.tenant == "acme"
    assert [r.id for r in loaded.rules] == ["li-shangfu", "drills", "cr"]
    first = loaded.rules[0]
    assert first.severity == "high"
    assert first.tags == ["people", "china"]
    assert first.any == ["Li Shangfu", "李尚福"]
    assert loaded.rules[1].stem is True
    assert loaded.rules[2].sources == ["reuters.com"]


def test_a_json_watchlist_loads_every_rule() -> None:
    loaded = parse_watchlist(_document(GOOD, tenant="acme"))
    assert loaded.errors == []
    assert loaded.tenant == "acme"
    assert [r.id for r in loaded.rules] == ["li-shangfu", "drills", "cr"]


def test_yaml_and_json_of_the_same_rules_load_the_same() -> None:
    import yaml

    as_yaml = yaml.safe_dump({"tenant": "acme", "rules": GOOD}, allow_unicode=True)
    assert parse_watchlist(as_yaml) == parse_watchlist(_document(GOOD, tenant="acme"))


def test_the_tenant_defaults_to_the_given_default() -> None:
    assert parse_watchlist(_document(GOOD)).tenant == "default"
    assert parse_watchlist(_document(GOOD), default_tenant="globex").tenant == "globex"
    assert parse_watchlist(_document(GOOD, tenant="acme"), default_tenant="globex").tenant == "acme"


def test_defaults_of_a_minimal_rule() -> None:
    [rule] = parse_watchlist(_document([{"id": "r", "name": "R", "any": ["x"]}])).rules
    assert rule.severity == "medium"
    assert rule.tags == []
    assert rule.none == []
    assert rule.stem is False
    assert rule.fields == ["title", "body"]
    assert rule.languages == []
    assert rule.sources == []


BAD_RULES = [
    pytest.param(
        {"id": "bad", "name": "Bad", "query": "(China OR"}, "bad", "query", 10, id="bad-query"
    ),
    pytest.param(
        {"id": "bad", "name": "Bad", "query": "china NEAR/101 russia"},
        "bad",
        "query",
        7,
        id="near-too-far",
    ),
    pytest.param({"id": "bad", "name": "Bad", "query": "NOT x"}, "bad", "query", 1, id="only-not"),
    pytest.param(
        {"id": "Bad_Id!", "name": "Bad", "any": ["x"]}, "Bad_Id!", "id", None, id="bad-id"
    ),
    pytest.param(
        {"id": "bad", "name": "Bad", "any": ["x"], "query": "x"},
        "bad",
        None,
        None,
        id="any-and-query",
    ),
    pytest.param({"id": "bad", "name": "Bad"}, "bad", None, None, id="neither-any-nor-query"),
    pytest.param(
        {"id": "bad", "name": "Bad", "any": ["x"], "severity": "urgent"},
        "bad",
        "severity",
        None,
        id="unknown-severity",
    ),
    pytest.param(
        {"id": "bad", "name": "Bad", "any": ["x"], "tags": [f"t{i}" for i in range(33)]},
        "bad",
        "tags",
        None,
        id="too-many-tags",
    ),
    pytest.param(
        {"id": "bad", "name": "Bad", "any": ["x"], "tags": ["Not A Tag"]},
        "bad",
        "tags",
        None,
        id="bad-tag",
    ),
    pytest.param(
        {"id": "bad", "name": "Bad", "any": ["x"], "fields": ["headline"]},
        "bad",
        "fields",
        None,
        id="unknown-field",
    ),
    pytest.param(
        {"id": "bad", "name": "Bad", "any": ["x"], "colour": "red"},
        "bad",
        "colour",
        None,
        id="unknown-key",
    ),
    pytest.param({"id": "bad", "name": "", "any": ["x"]}, "bad", "name", None, id="empty-name"),
    pytest.param({"id": "bad", "name": "Bad", "any": []}, "bad", "any", None, id="empty-any"),
    pytest.param(
        {"id": "bad", "name": "Bad", "any": ["..."]}, "bad", "any", None, id="wordless-phrase"
    ),
    pytest.param(
        {"id": "bad", "name": "Bad", "any": ["x"], "none": ["—"]},
        "bad",
        "none",
        None,
        id="wordless-exclusion",
    ),
    pytest.param(
        {"id": "bad", "name": "Bad", "any": [" ".join(["w"] * 17)]},
        "bad",
        "any",
        None,
        id="phrase-over-16-words",
    ),
    pytest.param({"name": "No id", "any": ["x"]}, "#1", "id", None, id="missing-id"),
]


@pytest.mark.parametrize(("bad", "rule_id", "where", "position"), BAD_RULES)
def test_one_bad_rule_is_reported_with_its_id_and_the_others_load(
    bad: dict[str, Any], rule_id: str, where: str | None, position: int | None
) -> None:
    loaded = parse_watchlist(_document([GOOD[0], bad, GOOD[1], GOOD[2]], tenant="acme"))
    assert [r.id for r in loaded.rules] == ["li-shangfu", "drills", "cr"]
    assert loaded.errors, "the bad rule was not reported"
    for error in loaded.errors:
        assert isinstance(error, RuleError)
        assert (error.tenant, error.rule_id) == ("acme", rule_id)
        assert error.message
    if where is not None:
        assert any(e.where.startswith(where) for e in loaded.errors), loaded.errors
    if position is not None:
        [error] = loaded.errors
        assert error.position == position
        assert f"position {position}" in str(error)


def test_a_duplicate_rule_id_is_reported_and_the_first_rule_kept() -> None:
    twin = {"id": "li-shangfu", "name": "Other", "any": ["someone else"]}
    loaded = parse_watchlist(_document([GOOD[0], twin, GOOD[1]]))
    assert [r.id for r in loaded.rules] == ["li-shangfu", "drills"]
    assert loaded.rules[0].any == ["Li Shangfu"]
    [error] = loaded.errors
    assert (error.rule_id, error.where) == ("li-shangfu", "id")


def test_every_bad_rule_is_reported() -> None:
    rules = [
        {"id": "q", "name": "Q", "query": "a OR"},
        GOOD[0],
        {"id": "s", "name": "S", "any": ["x"], "severity": "urgent"},
        {"id": "n", "name": "N", "query": "-x"},
    ]
    loaded = parse_watchlist(_document(rules))
    assert [r.id for r in loaded.rules] == ["li-shangfu"]
    assert {e.rule_id for e in loaded.errors} == {"q", "s", "n"}


def test_the_position_of_a_query_error_is_1_based_in_the_query() -> None:
    query = 'china AND "russia'
    [error] = parse_watchlist(_document([{"id": "q", "name": "Q", "query": query}])).errors
    assert error.position == query.index('"') + 1


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("rules: [unclosed", id="broken-yaml"),
        pytest.param('{"rules": [', id="broken-json"),
        pytest.param("- just\n- a list\n", id="yaml-list"),
        pytest.param("[]", id="json-list"),
        pytest.param("tenant: acme\n", id="no-rules"),
        pytest.param("rules: 3\n", id="rules-not-a-list"),
        pytest.param("", id="empty"),
    ],
)
def test_an_unreadable_document_is_one_error_and_no_rules(text: str) -> None:
    loaded = parse_watchlist(text)
    assert loaded.rules == []
    [error] = loaded.errors
    assert error.rule_id == "*"
    assert error.message


def test_yaml_tags_that_build_objects_are_refused() -> None:
    loaded = parse_watchlist("rules: !!python/object/apply:os.system ['true']\n")
    assert loaded.rules == []
    assert loaded.errors


def test_an_invalid_tenant_is_reported() -> None:
    loaded = parse_watchlist(_document(GOOD, tenant="Not A Tenant"))
    assert loaded.rules == []
    [error] = loaded.errors
    assert error.where == "tenant"


def test_unknown_top_level_keys_are_reported_but_rules_load() -> None:
    loaded = parse_watchlist(_document(GOOD, owner="me"))
    assert [r.id for r in loaded.rules] == ["li-shangfu", "drills", "cr"]
    [error] = loaded.errors
    assert "owner" in error.message


def test_a_rule_that_is_not_a_mapping_is_reported_by_its_index() -> None:
    loaded = parse_watchlist(_document(["just a string", GOOD[0]]))
    assert [r.id for r in loaded.rules] == ["li-shangfu"]
    assert {e.rule_id for e in loaded.errors} == {"#0"}
