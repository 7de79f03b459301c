"""The demo seeds: `seeds/watchlist.yaml` over the two seed articles, as a reader expects.

A seed article is plain text: the headline on the first line, the body after it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.article import Article
from schemas.identity import article_id
from services.matcher.alerts import match_record
from services.matcher.engine.loading import LoadedWatchlist, parse_watchlist
from services.matcher.engine.matcher import Matcher, MatchResult
from services.matcher.engine.reference import ReferenceMatcher
from tests.unit.engine.conftest import RECEIVED_AT

SEEDS = Path(__file__).resolve().parents[3] / "seeds"
SEED_RULES = {"li-shangfu", "military-drills", "china-russia-defence"}


def _load() -> LoadedWatchlist:
    return parse_watchlist((SEEDS / "watchlist.yaml").read_text("utf-8"))


def _seed_article(path: Path) -> Article:
    title, _, body = path.read_text("utf-8").partition("\n")
    title = title.strip()
    return Article(
        article_id=article_id(None, None, title, body),
        title=title,
        body=body,
        received_at=RECEIVED_AT,
    )


SEED_ARTICLES = sorted(SEEDS.glob("*.txt"))


@pytest.fixture(params=["fast", "reference"])
def seed_matcher(request: pytest.FixtureRequest) -> Matcher | ReferenceMatcher:
    loaded = _load()
    pairs = [(loaded.tenant, rule) for rule in loaded.rules]
    if request.param == "fast":
        matcher, errors = Matcher.build(pairs)
        assert errors == []
        return matcher
    reference = ReferenceMatcher(pairs)
    assert reference.errors == []
    return reference


def test_there_are_two_seed_articles() -> None:
    assert len(SEED_ARTICLES) == 2


def test_seed_watchlist_loads_without_errors() -> None:
    loaded = _load()
    assert loaded.errors == []
    assert loaded.tenant == "demo"
    assert {rule.id for rule in loaded.rules} == SEED_RULES


@pytest.mark.parametrize("path", SEED_ARTICLES, ids=lambda p: p.name)
def test_every_seed_rule_matches_every_seed_article(
    seed_matcher: Matcher | ReferenceMatcher, path: Path
) -> None:
    result: MatchResult = seed_matcher.match(_seed_article(path))
    assert {m.rule_id for m in result.matches} == SEED_RULES
    assert all(m.tenant == "demo" for m in result.matches)


@pytest.mark.parametrize("path", SEED_ARTICLES, ids=lambda p: p.name)
def test_seed_evidence_quotes_what_a_reader_would_point_at(
    seed_matcher: Matcher | ReferenceMatcher, path: Path
) -> None:
    item = _seed_article(path)
    found = {m.rule_id: m for m in seed_matcher.match(item).matches}
    texts = {"title": item.title, "body": item.body}
    for match in found.values():
        for span in match.evidence:
            assert span.text == texts[span.field][span.start : span.end]

    li = found["li-shangfu"]
    assert {s.text for s in li.evidence} == {"Li Shangfu"}
    assert li.snippet is not None
    assert "Li Shangfu" in li.snippet.text

    drills = {s.text.lower() for s in found["military-drills"].evidence}
    assert "joint exercises" in drills  # stem: true, so the plural counts

    defence = found["china-russia-defence"].evidence
    quoted = {s.text.lower() for s in defence}
    assert quoted & {"china", "chinese", "beijing"}
    assert quoted & {"russia", "russian", "moscow"}
    assert quoted & {"defense", "defence", "military"}


def test_the_first_seed_reports_military_drills_and_its_headline() -> None:
    item = _seed_article(SEEDS / "000_96e167dc266a1ce7.txt")
    loaded = _load()
    matcher, _ = Matcher.build((loaded.tenant, r) for r in loaded.rules)
    found = {m.rule_id: m for m in matcher.match(item).matches}
    drills = [s.text for s in found["military-drills"].evidence]
    assert "military drills" in drills
    assert "joint exercises" in drills
    # The headline "Chinese defense minister heading to Russia ..." holds the whole query.
    title_quotes = [s.text for s in found["china-russia-defence"].evidence if s.field == "title"]
    assert title_quotes == ["Chinese", "defense", "Russia"]


def test_seed_articles_get_different_article_ids() -> None:
    ids = {_seed_article(path).article_id for path in SEED_ARTICLES}
    assert len(ids) == 2


def test_alert_ids_are_deterministic_across_runs() -> None:
    def run() -> list[str]:
        loaded = _load()
        matcher, _ = Matcher.build((loaded.tenant, r) for r in loaded.rules)
        records = []
        for path in SEED_ARTICLES:
            item = _seed_article(path)
            records += [match_record(m, item.article_id) for m in matcher.match(item).matches]
        return sorted(r.alert_id for r in records)

    first, second = run(), run()
    assert first == second
    assert len(set(first)) == len(first) == 6
