"""Story grouping over the BBC corpus: how many articles group, the largest groups, articles/s,
memory per article, and a sample of grouped pairs (titles only) to check by hand.

Run with `.venv/bin/python -m tests.bench.stories`. Writes tests/bench/results/stories.json and
stories.md; prints the summary. Articles arrive one a minute in corpus order (37 hours, inside
the 72 h window). Also checks the candidate indexes against a brute-force pass: an article that
starts a story although some earlier article meets the grouping rule is a miss.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from schemas.article import Article
from services.matcher.stories import (
    Fingerprint,
    GroupingPolicy,
    StoryAssignment,
    StoryIndex,
    overlap,
)
from tests.bench.corpus import corpus_or_none

RESULTS = Path(__file__).parent / "results"
MIN_SECONDS = 3.0
SAMPLE_PAIRS = 20  # titles only: the corpus itself never enters the repository


@dataclass(frozen=True)
class Pair:
    """An article and the earlier article it was grouped with."""

    article: Article
    via: Article
    shared: float
    containment: float
    jaccard: float

    @property
    def kind(self) -> str:
        """copy (>= 90% contained), near-copy (>= 50%) or passage (shares a passage)."""
        if self.containment >= 0.9:
            return "copy"
        if self.containment >= 0.5:
            return "near-copy"
        return "passage"


def _feed(index: StoryIndex, articles: list[Article]) -> list[StoryAssignment]:
    minute = timedelta(minutes=1)
    return [
        index.assign(a.article_id, a.source, a.received_at + i * minute, a.title, a.body)
        for i, a in enumerate(articles)
    ]


def measure_throughput(articles: list[Article]) -> dict[str, float]:
    """Articles/s through `assign`, fresh indexes fed the whole corpus until MIN_SECONDS."""
    _feed(StoryIndex(), articles[:200])  # warm the analysis memo
    count = 0
    started = time.perf_counter()
    while True:
        _feed(StoryIndex(), articles)
        count += len(articles)
        elapsed = time.perf_counter() - started
        if elapsed >= MIN_SECONDS:
            break
    gc.collect()
    tracemalloc.start()
    index = StoryIndex()
    _feed(index, articles)
    memory = tracemalloc.get_traced_memory()[0] + index.native_bytes
    tracemalloc.stop()
    return {
        "articles_per_s": round(count / elapsed),
        "ms_per_article": round(elapsed / count * 1000, 3),
        "memory_kb_per_article": round(memory / len(articles) / 1024, 1),
    }


def brute_force_misses(articles: list[Article], assignments: list[StoryAssignment]) -> int:
    """Articles that started a story although an earlier article meets the rule."""
    policy = GroupingPolicy()
    fingerprints = [Fingerprint.of_text(a.title, a.body) for a in articles]
    postings: dict[int, list[int]] = defaultdict(list)
    misses = 0
    for i, fingerprint in enumerate(fingerprints):
        if assignments[i].via is None and len(fingerprint) >= policy.min_shingles:
            shared = Counter(j for h in fingerprint.hashes for j in postings[h])
            if any(
                len(fingerprints[j]) >= policy.min_shingles
                and policy.same_story(overlap(fingerprint, fingerprints[j]))
                for j, n in shared.items()
                if n >= policy.min_shingles
            ):
                misses += 1
        for h in fingerprint.hashes:
            postings[h].append(i)
    return misses


def grouped_pairs(articles: list[Article], assignments: list[StoryAssignment]) -> list[Pair]:
    """Every (article, the article it was grouped with), with their exact overlap."""
    by_id = {a.article_id: a for a in articles}
    pairs = []
    for article, assigned in zip(articles, assignments, strict=True):
        if assigned.via is None:
            continue
        via = by_id[assigned.via]
        found = overlap(
            Fingerprint.of_text(article.title, article.body),
            Fingerprint.of_text(via.title, via.body),
        )
        pairs.append(Pair(article, via, found.shared, found.containment, found.jaccard))
    return pairs


def sample(pairs: list[Pair], size: int = SAMPLE_PAIRS) -> list[Pair]:
    """The weakest half of the sample (likeliest false merges), the rest spread evenly."""
    ordered = sorted(pairs, key=lambda p: (p.containment, p.article.article_id))
    weakest = ordered[: size // 2]
    rest = ordered[size // 2 :]
    step = max(1, len(rest) // max(1, size - len(weakest)))
    return weakest + rest[::step][: size - len(weakest)]


def render_markdown(report: dict[str, object]) -> str:
    """The results as markdown."""
    lines = [
        f"Story grouping over the BBC corpus ({report['articles']:,} articles).",
        "",
        "| articles | stories | multi-article stories | articles grouped | copies | "
        "near-copies | shared passages | missed by the candidate indexes | articles/s | "
        "ms/article | KB/article held |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    kinds = report["pairs_by_kind"]
    perf = report["throughput"]
    assert isinstance(kinds, dict)
    assert isinstance(perf, dict)
    lines.append(
        f"| {report['articles']:,} | {report['stories']:,} | {report['multi_article_stories']} | "
        f"{report['articles_grouped']} | {kinds.get('copy', 0)} | {kinds.get('near-copy', 0)} | "
        f"{kinds.get('passage', 0)} | {report['missed_by_candidates']} | "
        f"{perf['articles_per_s']:,} | {perf['ms_per_article']} | "
        f"{perf['memory_kb_per_article']} |"
    )
    lines += ["", "Largest stories:", ""]
    largest = report["largest_stories"]
    assert isinstance(largest, list)
    for story in largest:
        lines.append(f"- {story['articles']} articles: " + "; ".join(story["titles"]))
    lines += [
        "",
        "Sample of grouped pairs (the weakest first), to check by hand in the corpus:",
        "",
        "| article | title | grouped with | title | shared shingles | containment | Jaccard |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = report["sample"]
    assert isinstance(rows, list)
    for row in rows:
        lines.append(
            f"| {row['article_id']} | {row['title']} | {row['via_id']} | {row['via_title']} | "
            f"{row['shared']} | {row['containment']} | {row['jaccard']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 also when the corpus is absent (with a message)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args(argv)
    articles = corpus_or_none()
    if articles is None:
        return 0
    index = StoryIndex()
    assignments = _feed(index, articles)
    sizes = Counter(a.story_id for a in assignments)
    members: dict[str, list[str]] = defaultdict(list)
    for article, assigned in zip(articles, assignments, strict=True):
        members[assigned.story_id].append(article.title)
    pairs = grouped_pairs(articles, assignments)
    report: dict[str, object] = {
        "articles": len(articles),
        "stories": len(sizes),
        "multi_article_stories": sum(1 for n in sizes.values() if n > 1),
        "articles_grouped": sum(n for n in sizes.values() if n > 1),
        "pairs_by_kind": dict(Counter(p.kind for p in pairs)),
        "missed_by_candidates": brute_force_misses(articles, assignments),
        "largest_stories": [
            {"articles": n, "titles": members[story_id][:4]}
            for story_id, n in sorted(sizes.items(), key=lambda s: (-s[1], s[0]))[:5]
            if n > 1
        ],
        "sample": [
            {
                "article_id": p.article.article_id,
                "title": p.article.title,
                "via_id": p.via.article_id,
                "via_title": p.via.title,
                "shared": round(p.shared),
                "containment": round(p.containment, 3),
                "jaccard": round(p.jaccard, 3),
                "kind": p.kind,
            }
            for p in sample(pairs)
        ],
        "throughput": measure_throughput(articles),
        "policy": repr(GroupingPolicy()),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stories.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = render_markdown(report)
    (RESULTS / "stories.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
