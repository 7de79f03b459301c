"""Fixtures shared by the engine tests: one helper that runs a case through either engine.

`match(rules, title=..., body=..., **article_fields)` builds the engine under test from the
rules (WatchlistRule objects, or dicts that become rules of tenant "t"), matches one article and
returns the MatchResult. It is parametrized over the fast `Matcher` and the `ReferenceMatcher`,
so every test that asks for it holds both engines to the same contract.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, settings

from schemas.article import Article
from schemas.watchlist import WatchlistRule
from services.matcher.engine.matcher import Matcher, MatchResult
from services.matcher.engine.reference import ReferenceMatcher

# Hypothesis settings of the engine properties: "engine" keeps the unit suite fast (each
# property well under 2 s); HYPOTHESIS_PROFILE=engine-thorough searches far longer. No example
# database, so the tests leave no files in the checkout. Tests apply `PROPERTY` as a decorator
# rather than loading a profile, so other test packages keep their own settings.
settings.register_profile(
    "engine",
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("engine-thorough", settings.get_profile("engine"), max_examples=5000)
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "")
PROPERTY = settings.get_profile(_PROFILE if _PROFILE.startswith("engine") else "engine")

TENANT = "t"
RECEIVED_AT = datetime(2023, 4, 15, 9, 30, tzinfo=UTC)

RuleSpec = WatchlistRule | Mapping[str, Any] | tuple[str, WatchlistRule | Mapping[str, Any]]


def article(
    title: str = "",
    body: str = "",
    *,
    article_id: str = "a1",
    language: str | None = None,
    source: str | None = None,
    **fields: Any,
) -> Article:
    """A valid Article with only the given text and metadata."""
    return Article(
        article_id=article_id,
        title=title,
        body=body,
        language=language,
        source=source,
        received_at=fields.pop("received_at", RECEIVED_AT),
        **fields,
    )


def make_rule(rule_id: str = "r", **fields: Any) -> WatchlistRule:
    """A WatchlistRule with a default name."""
    fields.setdefault("name", rule_id)
    return WatchlistRule(id=rule_id, **fields)


def as_tenant_rules(rules: Iterable[RuleSpec]) -> list[tuple[str, WatchlistRule]]:
    """(tenant, rule) pairs: dicts become rules of tenant "t" unless given as (tenant, rule)."""
    pairs: list[tuple[str, WatchlistRule]] = []
    for spec in rules:
        tenant = TENANT
        if isinstance(spec, tuple):
            tenant, spec = spec
        if not isinstance(spec, WatchlistRule):
            fields = dict(spec)
            spec = make_rule(fields.pop("id", "r"), **fields)
        pairs.append((tenant, spec))
    return pairs


class MatchFn(Protocol):
    def __call__(
        self, rules: Iterable[RuleSpec], title: str = "", body: str = "", **article_fields: Any
    ) -> MatchResult: ...


def _fast(pairs: list[tuple[str, WatchlistRule]]) -> Callable[[Article], MatchResult]:
    matcher, errors = Matcher.build(pairs)
    assert errors == [], f"rules were refused: {errors}"
    return matcher.match


def _reference(pairs: list[tuple[str, WatchlistRule]]) -> Callable[[Article], MatchResult]:
    matcher = ReferenceMatcher(pairs)
    assert matcher.errors == [], f"rules were refused: {matcher.errors}"
    return matcher.match


ENGINES: dict[str, Callable[[list[tuple[str, WatchlistRule]]], Callable[[Article], MatchResult]]]
ENGINES = {"fast": _fast, "reference": _reference}


@pytest.fixture(params=list(ENGINES))
def engine(request: pytest.FixtureRequest) -> str:
    """The name of the engine under test: "fast" (Matcher) or "reference" (ReferenceMatcher)."""
    return str(request.param)


@pytest.fixture
def match(engine: str) -> MatchFn:
    """Build the engine under test from `rules` and match one article against it."""

    def run(
        rules: Iterable[RuleSpec], title: str = "", body: str = "", **article_fields: Any
    ) -> MatchResult:
        matcher = ENGINES[engine](as_tenant_rules(rules))
        return matcher(article(title, body, **article_fields))

    return run
