"""Rules and article streams for tests and benchmarks that push many articles through."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from schemas.article import Article
from schemas.watchlist import WatchlistRule
from services.matcher.alerts import match_record
from services.matcher.engine.matcher import Matcher
from tests.bench.corpus import build_vocabulary, corpus_dir, generate_rules, load_articles

WORDS = (
    "minister",
    "defence",
    "china",
    "russia",
    "moscow",
    "beijing",
    "drills",
    "navy",
    "army",
    "summit",
    "talks",
    "trade",
    "sanctions",
    "ukraine",
    "war",
    "border",
    "treaty",
    "parliament",
    "election",
    "vote",
    "budget",
    "energy",
    "gas",
    "oil",
    "pipeline",
    "market",
    "shares",
    "bank",
    "rates",
    "inflation",
    "court",
    "ruling",
    "police",
    "strike",
    "union",
    "football",
    "league",
    "cup",
    "final",
)


def synthetic_workload(
    articles: int, rules: int, seed: int = 7, words: tuple[str, ...] = WORDS
) -> tuple[list[WatchlistRule], list[Article]]:
    """Rules of two-word phrases and articles of random `words`: some match, most do not.

    About 65 * rules / len(words)**2 matches per article: with the 39 default words and 40
    rules, two; 1,000 rules need about 130 words for the BBC corpus's five or so.
    """
    rng = random.Random(seed)
    watch = [
        WatchlistRule(
            id=f"r{n}", name=f"Rule {n}", any=[f"{rng.choice(words)} {rng.choice(words)}"]
        )
        for n in range(rules)
    ]
    now = datetime.now(UTC)
    stream = [
        Article(
            article_id=f"a{n:05d}",
            title=" ".join(rng.choices(words, k=6)),
            body=" ".join(rng.choices(words, k=60)),
            received_at=now,
        )
        for n in range(articles)
    ]
    return watch, stream


def corpus_workload(articles: int, rules: int) -> tuple[list[WatchlistRule], list[Article]]:
    """The first `articles` BBC articles (repeated with new ids if needed) and generated rules.

    Falls back to `synthetic_workload` when the corpus is not there (as on a CI machine).
    """
    if not (corpus_dir() / "train.csv").is_file():
        vocabulary = tuple(f"{WORDS[n % len(WORDS)]}{n}" for n in range(130))
        return synthetic_workload(articles, rules, words=vocabulary)
    corpus = load_articles()
    stream = [
        a.model_copy(update={"article_id": f"{a.article_id}-{n // len(corpus)}"})
        for n, a in ((n, corpus[n % len(corpus)]) for n in range(articles))
    ]
    return generate_rules(build_vocabulary(corpus), rules), stream


def expected_alert_ids(
    tenant: str, rules: list[WatchlistRule], articles: list[Article]
) -> set[str]:
    """The alert ids `newsalert match` computes offline for these rules and articles."""
    matcher, errors = Matcher.build((tenant, r) for r in rules)
    assert not errors, errors[:3]
    return {
        match_record(m, a.article_id).alert_id for a in articles for m in matcher.match(a).matches
    }
