"""The matcher worker end to end on one core: BBC articles in, alerts out, 10k rules loaded.

A real broker (the test harness's), one `python -m services.matcher` process, the corpus
produced to the articles topic beforehand; the clock runs from the worker's first consumed
article to its last, and the CPU the worker and the broker use meanwhile is read from /proc.
Then, to show where the time goes: the same run with the work done beforehand, twice (the
real worker with each article's outcome looked up, and faust, aiokafka and the batching
producer alone forwarding each article's records: tests/bench/replay_worker.py); the
worker's producing step alone (the same alerts, sent through the same `BatchingProducer` to
the same broker, with nothing else in the process); and a profile of the worker's own logic
(decode, match, story grouping, alert building) on the same articles, in this process.

python -m tests.bench.matcher_worker [--rules 10000] [--copies 2]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pickle
import platform
import pstats
import sys
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.article import Article
from schemas.watchlist import RuleRecord
from services.common.batching_producer import BatchingProducer, Delivery
from services.common.kafka import encode, ensure_topics, make_producer
from services.common.settings import MatcherSettings
from services.common.topics import build_topics, record_key
from services.demo.processes import ServiceProcess, free_port, metric
from services.matcher.engine.matcher import Matcher
from services.matcher.processing import ArticleProcessor, Processed
from services.matcher.stories import StoryIndex
from tests.bench.broker import local_broker
from tests.bench.corpus import build_vocabulary, corpus_or_none, generate_rules
from tests.bench.cpu import cpu_of
from tests.bench.replay_worker import DEPTH_VARIABLE, OUTCOMES_VARIABLE
from tests.support.kafka_io import produce

RESULTS = Path(__file__).parent / "results"
TARGET = 2_000  # articles/s through one worker (issue 5)
TENANT = "bench"
ARTICLES_METRIC = "newsalert_matcher_articles_total"


def _copies(articles: list[Article], copies: int) -> list[Article]:
    """The corpus `copies` times, each copy with its own ids and a later receipt time."""
    start = datetime.now(UTC)
    return [
        a.model_copy(
            update={
                "article_id": f"{a.article_id}-{n}",
                "received_at": start + timedelta(seconds=n),
            }
        )
        for n in range(copies)
        for a in articles
    ]


async def _through_worker(
    bootstrap: str,
    broker: int,
    rules: list[RuleRecord],
    articles: list[Article],
    log_dir: Path,
    module: str = "services.matcher",
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """One worker process (`module`) through the articles, timed by its own metrics."""
    prefix = f"bench{time.time_ns()}."
    topics = build_topics(prefix, partitions=6, retry_steps=1)
    await ensure_topics(bootstrap, topics.all())
    await produce(
        bootstrap,
        topics.rules.name,
        [(record_key(r.tenant, r.rule.id).encode(), encode(r)) for r in rules],
    )
    await produce(
        bootstrap, topics.articles.name, [(a.article_id.encode(), encode(a)) for a in articles]
    )
    port = free_port()
    worker = ServiceProcess(
        module,
        {
            **(env or {}),
            "NEWSALERT_BOOTSTRAP_SERVERS": bootstrap,
            "NEWSALERT_TOPIC_PREFIX": prefix,
            "NEWSALERT_PARTITIONS": "6",
            "NEWSALERT_RETRY_SCHEDULE_S": "[1]",
            "NEWSALERT_MATCHER_GROUP": f"{prefix}matcher",
            "NEWSALERT_MATCHER_PORT": str(port),
        },
        port,
        log_dir / f"{module}.log",
    )
    launched = time.perf_counter()
    worker.start()
    try:
        await worker.wait_ready(timeout_s=300)
        ready = time.perf_counter()
        first = last = None
        assert worker.process is not None
        pids = {"worker": worker.process.pid, "broker": broker}
        cpu_first: dict[str, float] = {}
        cpu_last: dict[str, float] = {}
        while True:
            done = await metric(worker, ARTICLES_METRIC)
            now = time.perf_counter()
            if done and first is None:
                first, cpu_first = now, cpu_of(pids)
            if done >= len(articles):
                last, cpu_last = now, cpu_of(pids)
                break
            await asyncio.sleep(0.05)  # a separate process: its /metrics is what we can see
        alerts = await metric(worker, "newsalert_matcher_alerts_total")
        assert first is not None
        seconds = last - first
        return {
            # Shares of one core while the articles flowed: the worker is one process on
            # one core (its Python code holds the GIL); the broker has the other core.
            **{
                f"{name}_cpu_share": round((cpu_last[name] - cpu_first[name]) / seconds, 2)
                for name in pids
            },
            "articles": len(articles),
            "alerts": alerts,
            "startup_s": round(ready - launched, 2),
            "seconds": round(seconds, 2),
            "articles_per_s": round(len(articles) / seconds),
        }
    finally:
        worker.stop()


def rule_records(corpus: list[Article], count: int) -> list[RuleRecord]:
    """`count` generated rules of the benchmark tenant, as the rules topic carries them."""
    now = datetime.now(UTC)
    return [
        RuleRecord(tenant=TENANT, rule=r, version=r.version(), updated_at=now)
        for r in generate_rules(build_vocabulary(corpus), count)
    ]


def outcomes_of(rules: list[RuleRecord], articles: list[Article]) -> dict[bytes, Processed]:
    """Each article's outcome, as the worker computes it, by its record value."""
    matcher, _ = Matcher.build((r.tenant, r.rule) for r in rules)
    processor = ArticleProcessor(StoryIndex())
    now = datetime.now(UTC)
    raws = [encode(article) for article in articles]
    return {raw: processor.process(raw, matcher, now) for raw in raws}


def alert_records(outcomes: dict[bytes, Processed]) -> list[list[tuple[bytes, bytes]]]:
    """Each outcome's alert records (key, value), as the worker writes them."""
    return [[(a.key, a.value) for a in outcome.alerts] for outcome in outcomes.values()]


def alerts_of(rules: list[RuleRecord], articles: list[Article]) -> list[list[tuple[bytes, bytes]]]:
    """Each article's alert records (key, value), as the worker writes them."""
    return alert_records(outcomes_of(rules, articles))


async def _replayed(
    bootstrap: str,
    broker: int,
    rules: list[RuleRecord],
    articles: list[Article],
    outcomes: Path,
    depth: str,
) -> dict[str, float]:
    """The worker with its work done beforehand, to `depth` (tests/bench/replay_worker.py)."""
    env = {OUTCOMES_VARIABLE: str(outcomes), DEPTH_VARIABLE: depth}
    return await _through_worker(
        bootstrap, broker, rules, articles, outcomes.parent, "tests.bench.replay_worker", env
    )


async def _producing_alone(
    bootstrap: str, alerts: list[list[tuple[bytes, bytes]]]
) -> dict[str, float]:
    """The worker's producing step with nothing else in the process: each article's alerts
    sent through one `BatchingProducer`, at most as many articles in flight as the worker
    allows, the loop free to run the lanes between articles as the worker's is."""
    topics = build_topics(f"produce{int(time.time())}.", partitions=6, retry_steps=1)
    await ensure_topics(bootstrap, [topics.alerts])
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        batching = BatchingProducer(producer)
        await batching.prepare([topics.alerts.name])
        limit = MatcherSettings().matcher_max_in_flight
        in_flight: deque[Delivery] = deque()
        started, cpu = time.perf_counter(), time.thread_time()
        for article in alerts:
            in_flight.append(batching.send([(topics.alerts.name, k, v) for k, v in article]))
            if len(in_flight) >= limit:
                await in_flight.popleft()
            else:
                await asyncio.sleep(0)
        for delivery in in_flight:
            await delivery
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
        await batching.close()
    finally:
        await producer.stop()
    total = sum(map(len, alerts))
    return {
        "records": total,
        "records_per_s": round(total / elapsed),
        "us_per_article": round(elapsed / len(alerts) * 1e6),
        "cpu_us_per_article": round(cpu / len(alerts) * 1e6),
    }


def _profile(rules: list[RuleRecord], articles: list[Article]) -> dict[str, object]:
    matcher, _ = Matcher.build((r.tenant, r.rule) for r in rules)
    raws = [encode(a) for a in articles]
    now = datetime.now(UTC)

    def run(profiler: cProfile.Profile | None) -> float:
        processor = ArticleProcessor(StoryIndex())  # fresh: every article is new to it
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for raw in raws:
            outcome = processor.process(raw, matcher, now)  # alerts come out encoded
            if outcome.story is not None:
                encode(outcome.story)
        if profiler is not None:
            profiler.disable()
        return time.perf_counter() - started

    # Throughput without the profiler, whose per-call cost would distort it; then where the
    # time goes, with it (the shares hold, the absolute µs are inflated).
    elapsed = run(None)
    profiler = cProfile.Profile()
    profiled = run(profiler)
    stats = pstats.Stats(profiler)
    parts = {
        "decode the article": "model_validate_json",
        "match the rules": "match",
        "group into stories": "assign",
        "claim first-of-story, quote evidence, write alerts as JSON": "records",
        "(of which) claim first-of-story per rule": "first_for_rules",
        "encode story records": "encode",
    }
    table = stats.stats  # type: ignore[attr-defined]
    spent = {}
    for label, name in parts.items():
        spent[label] = round(
            sum(v[3] for (_, _, fn), v in table.items() if fn == name) / len(raws) * 1e6
        )
    return {
        "articles_per_s_in_process": round(len(raws) / elapsed),
        "us_per_article": round(elapsed / len(raws) * 1e6),
        "us_per_article_profiled": round(profiled / len(raws) * 1e6),
        "us_per_article_by_step": spent,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 also when the corpus is absent (with a message)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--copies", type=int, default=2)
    args = parser.parse_args(argv)
    corpus = corpus_or_none()
    if corpus is None:
        return 0
    rules = rule_records(corpus, args.rules)
    articles = _copies(corpus, args.copies)
    with local_broker() as (bootstrap, scratch, broker):
        through = asyncio.run(_through_worker(bootstrap, broker, rules, articles, scratch))
        outcomes = outcomes_of(rules, articles)
        pickled = scratch / "outcomes.pickle"
        pickled.write_bytes(pickle.dumps(outcomes))
        replayed = {
            depth: asyncio.run(_replayed(bootstrap, broker, rules, articles, pickled, depth))
            for depth in ("outcomes", "records")
        }
        producing = asyncio.run(_producing_alone(bootstrap, alert_records(outcomes)))
    profile = _profile(rules, articles)
    report = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "rules": len(rules),
        "worker": through,
        "worker_with_outcomes_replayed": replayed["outcomes"],
        "faust_aiokafka_and_batching_alone": replayed["records"],
        "producing_alone": producing,
        "target_articles_per_s": TARGET,
        "profile": profile,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "matcher_worker.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Matcher worker: {len(rules):,} rules, {through['articles']:,} BBC articles",
        "",
        "| measure | value |",
        "|---|---|",
        f"| sustained articles/s, one worker (target {TARGET:,}) | {through['articles_per_s']:,} |",
        f"| meanwhile, CPU used by the worker / by the broker | {through['worker_cpu_share']:.0%} "
        f"/ {through['broker_cpu_share']:.0%} of a core |",
        f"| alerts produced | {int(through['alerts']):,} |",
        f"| worker start to ready (10k rules compiled) | {through['startup_s']} s |",
        f"| the same worker with every outcome computed beforehand (its plumbing's floor) "
        f"| {replayed['outcomes']['articles_per_s']:,} articles/s, the worker at "
        f"{replayed['outcomes']['worker_cpu_share']:.0%} of a core |",
        f"| faust, aiokafka and the batching producer alone, sending each article's records "
        f"as they are | {replayed['records']['articles_per_s']:,} articles/s, the worker at "
        f"{replayed['records']['worker_cpu_share']:.0%} of a core |",
        f"| worker logic alone, in process | {profile['articles_per_s_in_process']:,} articles/s |",
        f"| producing alone: the same alerts through the same producer | "
        f"{producing['records_per_s']:,} records/s, {producing['us_per_article']:,} µs an article "
        f"({producing['cpu_us_per_article']:,} µs of it on the event loop's CPU) |",
        "",
        "Where one article's time goes (µs, in process, under cProfile: "
        f"{profile['us_per_article_profiled']:,} µs an article in all):",
        "",
        "| step | µs |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in profile["us_per_article_by_step"].items()),  # type: ignore[attr-defined]
        "",
    ]
    markdown = "\n".join(lines)
    (RESULTS / "matcher_worker.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
