"""The BBC benchmark corpus (../shared/corpus, research use only: never copied into the repo)
and watchlist rule sets generated from its own vocabulary, reproducibly from a seed."""

from __future__ import annotations

import csv
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from schemas.article import Article
from schemas.watchlist import WatchlistRule
from services.matcher.engine.normalize import analyze_terms

DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "bbc"
TITLE_WORDS = 6  # the headline runs straight into the body; its first words stand in for it


def corpus_dir() -> Path:
    """Where the corpus is: NEWSALERT_CORPUS_DIR, else ../shared/corpus/bbc beside the repo."""
    return Path(os.environ.get("NEWSALERT_CORPUS_DIR", DEFAULT_CORPUS))


def corpus_or_none() -> list[Article] | None:
    """The corpus's articles; None, having said so, when it is absent (benchmarks then skip)."""
    directory = corpus_dir()
    if not (directory / "train.csv").is_file():
        print(f"skipped: the BBC corpus is not at {directory} (set NEWSALERT_CORPUS_DIR)")
        return None
    return load_articles(directory)


def load_articles(directory: Path | None = None) -> list[Article]:
    """Every article of the corpus, in a stable order."""
    directory = directory or corpus_dir()
    csv.field_size_limit(10_000_000)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    articles: list[Article] = []
    for name in ("train.csv", "val.csv", "test.csv"):
        with (directory / name).open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                words = row["text"].split(" ")
                articles.append(
                    Article(
                        article_id=f"bbc-{len(articles):05d}",
                        source="bbc.co.uk",
                        language="en",
                        title=" ".join(words[:TITLE_WORDS]),
                        body=" ".join(words[TITLE_WORDS:]),
                        received_at=now,
                    )
                )
    return articles


@dataclass(frozen=True)
class Vocabulary:
    """Words, phrases and names seen in the corpus, by how many articles hold them."""

    words: list[str]
    common_words: list[str]
    phrases: list[str]
    names: list[str]


_NAME = re.compile(r"\b([A-Z][a-z]{2,}) ([A-Z][a-z]{2,})\b")


def build_vocabulary(articles: list[Article]) -> Vocabulary:
    """Content words, two- and three-word phrases and capitalised names from the corpus."""
    doc_freq: Counter[str] = Counter()
    bigrams: Counter[str] = Counter()
    names: Counter[str] = Counter()
    for article in articles:
        tokens = analyze_terms(article.body)
        doc_freq.update(set(tokens))
        bigrams.update({f"{a} {b}" for a, b in pairwise(tokens) if len(a) > 3 and len(b) > 3})
        names.update({" ".join(m) for m in _NAME.findall(article.body)})
    n = len(articles)
    words = sorted(
        w for w, c in doc_freq.items() if 2 <= c <= n * 0.01 and len(w) >= 4 and w.isalpha()
    )
    common = sorted(
        w for w, c in doc_freq.items() if n * 0.01 < c <= n * 0.2 and len(w) >= 4 and w.isalpha()
    )
    phrases = sorted(p for p, c in bigrams.items() if c >= 2)
    return Vocabulary(words, common, phrases, sorted(p for p, c in names.items() if c >= 2))


def generate_rules(vocab: Vocabulary, count: int, seed: int = 7) -> list[WatchlistRule]:
    """`count` rules: ~60% alias lists, ~30% Boolean (AND, OR, NEAR, NOT), ~10% prefix or
    field-scoped; about one in ten stemmed."""
    rng = random.Random(seed)
    rules: list[WatchlistRule] = []
    for index in range(count):
        roll = rng.random()
        rule_id = f"r{index:06d}"
        stem = rng.random() < 0.1
        if roll < 0.6:
            aliases = [rng.choice(vocab.names)] if rng.random() < 0.5 else []
            aliases += [rng.choice(vocab.phrases) for _ in range(rng.randint(1, 3))]
            aliases += [rng.choice(vocab.words) for _ in range(rng.randint(0, 2))]
            none = [rng.choice(vocab.words)] if rng.random() < 0.2 else []
            rules.append(
                WatchlistRule(id=rule_id, name=f"Alias {index}", any=aliases, none=none, stem=stem)
            )
        elif roll < 0.9:
            rules.append(
                WatchlistRule(
                    id=rule_id, name=f"Boolean {index}", query=_boolean(rng, vocab), stem=stem
                )
            )
        else:
            prefix = rng.choice(vocab.words)[: rng.randint(4, 6)]
            query = (
                f"{prefix}* AND {rng.choice(vocab.common_words)}"
                if rng.random() < 0.5
                else f'title:"{rng.choice(vocab.phrases)}" OR body:{rng.choice(vocab.words)}'
            )
            rules.append(WatchlistRule(id=rule_id, name=f"Scoped {index}", query=query))
    return rules


def _boolean(rng: random.Random, vocab: Vocabulary) -> str:
    def side() -> str:
        picks = [rng.choice(vocab.words) for _ in range(rng.randint(1, 3))]
        return picks[0] if len(picks) == 1 else "(" + " OR ".join(picks) + ")"

    shape = rng.random()
    if shape < 0.4:
        query = f"{side()} NEAR/{rng.randint(3, 15)} {side()}"
    elif shape < 0.7:
        query = f'"{rng.choice(vocab.phrases)}" AND {side()}'
    else:
        query = f"{rng.choice(vocab.common_words)} AND {side()}"
    if rng.random() < 0.3:
        query += f" NOT {rng.choice(vocab.words)}"
    return query
