"""Engine benchmark: articles/s on one core at 1k, 10k and 100k rules, compile time, memory,
and a naive baseline (one Python regex per rule). Run with `make bench`.

Matching an article here is what the matcher service does before it builds alerts: analyse
the text, scan it, decide every rule. Evidence is quoted on demand, by whoever needs it; the
worker benchmark (tests/bench/matcher_worker.py) measures that part too.

Memory is the growth of the process's resident set over the first build of the ruleset,
after a collection: Python objects and the native core's allocations alike.

Writes tests/bench/results/engine.json and engine.md; prints the table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from statistics import quantiles

from schemas.article import Article
from schemas.watchlist import WatchlistRule
from services.matcher.engine.matcher import Matcher
from tests.bench.corpus import build_vocabulary, corpus_or_none, generate_rules

RESULTS = Path(__file__).parent / "results"
TARGETS = {1_000: None, 10_000: 5_000, 100_000: 2_500}  # articles/s
MIN_SECONDS = 3.0


def resident_mb() -> float:
    """The process's resident set size now, in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def measure_engine(rules: list[WatchlistRule], articles: list[Article]) -> dict[str, float]:
    """Compile, memory and throughput of the fast engine for one rule set."""
    gc.collect()
    before = resident_mb()
    started = time.perf_counter()
    matcher, errors = Matcher.build(("bench", r) for r in rules)
    compile_s = time.perf_counter() - started
    assert not errors, errors[:3]
    gc.collect()
    memory_mb = resident_mb() - before
    # As the matcher service does after each ruleset build: the ruleset is long-lived, so
    # keep the collector from re-traversing its millions of objects on every article.
    gc.freeze()
    # A live edit: one rule changed; unchanged rules are reused, indexes rebuilt.
    edited = rules[0].model_copy(update={"any": ["breaking edit"], "query": None})
    started = time.perf_counter()
    matcher.updated([("bench", edited)])
    update_s = time.perf_counter() - started
    for article in articles[:50]:  # warm the analysis and stemming memos
        matcher.match(article)
    latencies: list[float] = []
    matches = candidates = 0
    started = time.perf_counter()
    while True:
        for article in articles:
            t0 = time.perf_counter()
            result = matcher.match(article)
            latencies.append(time.perf_counter() - t0)
            matches += len(result.rules)
            candidates += result.stats.candidates
        elapsed = time.perf_counter() - started
        if elapsed >= MIN_SECONDS:
            break
    n = len(latencies)
    gc.unfreeze()
    return {
        "rules": len(rules),
        "literals": matcher.literal_count,
        "compile_s": round(compile_s, 3),
        "update_one_rule_s": round(update_s, 3),
        "memory_mb": round(memory_mb, 1),
        "memory_mb_per_10k_rules": round(memory_mb * 10_000 / len(rules), 1),
        "articles_per_s": round(n / elapsed),
        "p50_ms": round(quantiles(latencies, n=100)[49] * 1000, 3),
        "p99_ms": round(quantiles(latencies, n=100)[98] * 1000, 3),
        "matches_per_article": round(matches / n, 2),
        "candidates_per_article": round(candidates / n, 1),
    }


def _regex_for(rule: WatchlistRule) -> re.Pattern[str]:
    # The naive approach: every positive word or phrase of the rule in one alternation.
    text = " ".join(rule.any or []) if rule.any else rule.query or ""
    words = [w for w in re.findall(r'"[^"]+"|[\w*]+', text) if w not in {"AND", "OR", "NOT"}]
    parts = [re.escape(w.strip('"')).replace(r"\*", r"\w*").replace(r"\ ", r"\W+") for w in words]
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b", re.IGNORECASE)


def measure_baseline(rules: list[WatchlistRule], articles: list[Article]) -> dict[str, float]:
    """One compiled regex per rule, each searched over each article."""
    patterns = [_regex_for(r) for r in rules]
    sample = articles[:100]
    started = time.perf_counter()
    matches = 0
    for article in sample:
        text = article.title + "\n" + article.body
        matches += sum(1 for p in patterns if p.search(text))
    elapsed = time.perf_counter() - started
    return {
        "rules": len(rules),
        "articles_per_s": round(len(sample) / elapsed, 1),
        "matches_per_article": round(matches / len(sample), 2),
    }


def render_markdown(report: dict[str, object]) -> str:
    """The results as a markdown table."""
    rows = report["engine"]
    assert isinstance(rows, list)
    lines = [
        "| rules | literals | articles/s | target | p50 ms | p99 ms | compile s | update 1 rule s"
        " | MB per 10k rules | matches/article | candidates/article |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        target = TARGETS.get(int(row["rules"]))
        lines.append(
            f"| {row['rules']:,} | {row['literals']:,} | {row['articles_per_s']:,} | "
            f"{'>= ' + format(target, ',') if target else '-'} | {row['p50_ms']} | "
            f"{row['p99_ms']} | {row['compile_s']} | {row['update_one_rule_s']} | "
            f"{row['memory_mb_per_10k_rules']} | "
            f"{row['matches_per_article']} | {row['candidates_per_article']} |"
        )
    base = report["baseline"]
    assert isinstance(base, dict)
    lines.append("")
    lines.append(
        f"Baseline, one Python regex per rule, {base['rules']:,} rules: "
        f"{base['articles_per_s']} articles/s; the engine at the same size is "
        f"{report['speedup_vs_baseline']}x faster."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 also when the corpus is absent (with a message)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--one", type=int, help="measure one size and print its row (internal)")
    args = parser.parse_args(argv)
    articles = corpus_or_none()
    if articles is None:
        return 0
    vocab = build_vocabulary(articles)
    if args.one:
        print(json.dumps(measure_engine(generate_rules(vocab, args.one), articles)))
        return 0
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        # A fresh process per size: memory freed by a smaller ruleset would otherwise be
        # reused by the next one and hide part of its growth.
        child = subprocess.run(
            [sys.executable, "-m", "tests.bench.engine", "--one", str(size)],
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    baseline = measure_baseline(generate_rules(vocab, 1_000), articles)
    print(json.dumps({"baseline": baseline}), flush=True)
    first = next((r for r in rows if r["rules"] == 1_000), rows[0])
    report = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "corpus_articles": len(articles),
        "engine": rows,
        "baseline": baseline,
        "speedup_vs_baseline": round(first["articles_per_s"] / baseline["articles_per_s"]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(report)
    (RESULTS / "engine.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
