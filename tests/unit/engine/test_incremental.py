"""`Matcher.updated`: a changed ruleset is a new Matcher; the old one is untouched."""

from __future__ import annotations

from schemas.article import Article
from schemas.watchlist import WatchlistRule
from services.matcher.engine.matcher import Matcher
from tests.unit.engine.conftest import article, make_rule

CHINA = make_rule("china", any=["china"])
RUSSIA = make_rule("russia", any=["russia"])
JAPAN = make_rule("japan", query="japan NOT korea")

ITEM = article(title="China, Russia and Japan", body="Nothing about the peninsula.")


def _ids(matcher: Matcher, item: Article = ITEM) -> set[tuple[str, str]]:
    return {(m.tenant, m.rule_id) for m in matcher.match(item).matches}


def _build(*rules: tuple[str, WatchlistRule]) -> Matcher:
    matcher, errors = Matcher.build(rules)
    assert errors == []
    return matcher


def test_updated_adds_a_rule() -> None:
    old = _build(("t", CHINA))
    new, errors = old.updated([("t", RUSSIA)])
    assert errors == []
    assert _ids(new) == {("t", "china"), ("t", "russia")}
    assert len(new) == 2


def test_updated_changes_a_rule() -> None:
    old = _build(("t", CHINA), ("t", RUSSIA))
    changed = make_rule("china", any=["beijing"])
    new, errors = old.updated([("t", changed)])
    assert errors == []
    assert _ids(new) == {("t", "russia")}
    assert _ids(new, article(body="Beijing")) == {("t", "china")}
    [match] = new.match(article(body="Beijing")).matches
    assert match.rule_version == changed.version() != CHINA.version()


def test_updated_removes_a_rule() -> None:
    old = _build(("t", CHINA), ("t", RUSSIA))
    new, errors = old.updated(deletes=[("t", "china")])
    assert errors == []
    assert _ids(new) == {("t", "russia")}
    assert len(new) == 1


def test_removing_an_unknown_rule_is_harmless() -> None:
    old = _build(("t", CHINA))
    new, errors = old.updated(deletes=[("t", "nope"), ("other", "china")])
    assert errors == []
    assert _ids(new) == {("t", "china")}


def test_rules_are_keyed_by_tenant_and_id() -> None:
    old = _build(("a", CHINA), ("b", CHINA))
    new, _ = old.updated(deletes=[("a", "china")])
    assert _ids(new) == {("b", "china")}


def test_the_old_matcher_is_unchanged() -> None:
    old = _build(("t", CHINA), ("t", RUSSIA))
    before = _ids(old)
    rules_before = old.rules()
    new, _ = old.updated(
        [("t", make_rule("china", any=["beijing"])), ("t", JAPAN)], deletes=[("t", "russia")]
    )
    assert _ids(new) == {("t", "japan")}
    assert _ids(old) == before == {("t", "china"), ("t", "russia")}
    assert old.rules() == rules_before
    assert len(old) == 2


def test_a_bad_edit_keeps_the_previous_version_and_is_reported() -> None:
    old = _build(("t", CHINA), ("t", RUSSIA))
    broken = make_rule("china", query="(china OR")
    new, errors = old.updated([("t", broken)])
    [error] = errors
    assert (error.tenant, error.rule_id, error.where) == ("t", "china", "query")
    assert error.position == len("(china OR") + 1
    assert _ids(new) == {("t", "china"), ("t", "russia")}
    [kept] = [r for r in new.rules() if r.rule_id == "china"]
    assert kept.rule == CHINA


def test_a_bad_new_rule_is_reported_and_left_out() -> None:
    old = _build(("t", CHINA))
    new, errors = old.updated([("t", make_rule("neg", query="NOT china")), ("t", RUSSIA)])
    assert [(e.rule_id, e.where) for e in errors] == [("neg", "query")]
    assert _ids(new) == {("t", "china"), ("t", "russia")}


def test_an_unchanged_rule_is_not_recompiled() -> None:
    old = _build(("t", CHINA), ("t", RUSSIA))
    compiled = {r.rule_id: r for r in old.rules()}
    same_again = make_rule("china", any=["china"])  # equal, not the same object
    new, errors = old.updated([("t", same_again), ("t", make_rule("russia", any=["moscow"]))])
    assert errors == []
    after = {r.rule_id: r for r in new.rules()}
    assert after["china"] is compiled["china"]
    assert after["russia"] is not compiled["russia"]


def test_untouched_rules_are_the_same_compiled_objects() -> None:
    old = _build(("t", CHINA), ("t", RUSSIA))
    compiled = {r.rule_id: r for r in old.rules()}
    new, _ = old.updated([("t", JAPAN)], deletes=[("t", "russia")])
    after = {r.rule_id: r for r in new.rules()}
    assert set(after) == {"china", "japan"}
    assert after["china"] is compiled["china"]


def test_a_presentation_only_edit_keeps_the_version() -> None:
    old = _build(("t", CHINA))
    renamed = make_rule("china", name="China (renamed)", any=["china"], severity="critical")
    new, errors = old.updated([("t", renamed)])
    assert errors == []
    [match] = new.match(ITEM).matches
    assert match.rule.rule.name == "China (renamed)"
    assert match.rule_version == CHINA.version()


def test_an_update_that_adds_a_stemmed_rule_scans_stems() -> None:
    old = _build(("t", CHINA))
    new, _ = old.updated([("t", make_rule("drills", any=["military drill"], stem=True))])
    assert _ids(new, article(body="military drills")) == {("t", "drills")}
    assert _ids(old, article(body="military drills")) == set()
