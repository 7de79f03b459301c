"""The notifier alone: alerts already in Kafka, out as signed webhooks to one receiver.

The end-to-end benchmark's slowest stage, measured by itself, with the CPU it spends per
alert; then the floor under it: the same alerts read by a plain aiokafka consumer, which is
what every notifier pays before it parses, routes, signs or sends anything. A real broker, one
`python -m services.notifier` process, a webhook receiver on loopback in this process, one
subscription that wants every alert; the alerts of BBC articles at 10k rules, as the matcher
writes them, produced to the alerts topic beforehand. The clock runs from the first webhook's
arrival to the last one's.

python -m tests.bench.notifier [--rules 10000] [--articles 400]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from schemas.subscription import SigningSecret, Subscription, SubscriptionFilter
from services.common.kafka import encode, ensure_topics, make_consumer
from services.common.topics import build_topics, record_key
from services.demo.receiver import running_receiver
from services.notifier.signing import alerts_of as alerts_in
from tests.bench.broker import local_broker
from tests.bench.corpus import corpus_or_none
from tests.bench.cpu import cpu_seconds
from tests.bench.matcher_worker import TENANT, alerts_of, rule_records
from tests.support.kafka_io import produce
from tests.support.notifier import notifier_process

RESULTS = Path(__file__).parent / "results"
SECRET = "whsec_" + base64.b64encode(b"newsalert-notifier-benchmark-key").decode()
GIVE_UP_S = 600.0
CONSUMED_COPIES = 10


async def _deliver(
    bootstrap: str, alerts: list[tuple[bytes, bytes]], per_request: int, log: Path
) -> dict[str, float]:
    """One notifier delivering `alerts` to one receiver, `per_request` alerts a request."""
    prefix = f"notify{int(time.time())}-{per_request}."
    topics = build_topics(prefix, partitions=3, retry_steps=1)
    await ensure_topics(bootstrap, topics.all())
    async with running_receiver() as receiver:
        now = datetime.now(UTC)
        subscription = Subscription(
            id="hook",
            tenant=TENANT,
            url=receiver.url + "/hook",
            filter=SubscriptionFilter(first_of_story_only=False),
            alerts_per_request=per_request,
            secrets=[SigningSecret(secret=SECRET, created_at=now)],
            created_at=now,
            updated_at=now,
        )
        await produce(
            bootstrap,
            topics.subscriptions.name,
            [(record_key(TENANT, "hook").encode(), encode(subscription))],
        )
        await produce(bootstrap, topics.alerts.name, list(alerts))
        notifier = notifier_process(
            bootstrap, prefix, f"{prefix}notifier", [1], log, NEWSALERT_LOG_LEVEL="warning"
        )
        notifier.start()
        try:
            await notifier.wait_ready(timeout_s=120)
            assert notifier.process is not None
            pid = notifier.process.pid
            await receiver.wait_for(lambda rs: len(rs) >= 1, GIVE_UP_S)
            first, cpu = receiver.requests[0].wall, cpu_seconds(pid)
            in_first = len(alerts_in(receiver.requests[0].body))
            await receiver.wait_for(lambda _: receiver.alerts() >= len(alerts), GIVE_UP_S)
            last, cpu = receiver.requests[-1].wall, cpu_seconds(pid) - cpu
        finally:
            notifier.stop()
        distinct = {a["alert_id"] for r in receiver.requests for a in alerts_in(r.body)}
    requests = len(receiver.requests)
    return {
        "alerts_per_request": per_request,
        "alerts": len(alerts),
        "requests": requests,
        "alerts_delivered": receiver.alerts(),
        "distinct_alerts_delivered": len(distinct),
        "seconds": round(last - first, 2),
        # From the first arrival on: what the first request carried is not counted.
        "alerts_per_s": round((receiver.alerts() - in_first) / (last - first)),
        "requests_per_s": round((requests - 1) / (last - first)),
        "cpu_us_per_alert": round(cpu / (receiver.alerts() - in_first) * 1e6),
    }


async def _consuming_alone(
    bootstrap: str, broker: int, alerts: list[tuple[bytes, bytes]]
) -> dict[str, float]:
    """The alerts, `CONSUMED_COPIES` times over, read from a topic of their own by a plain
    consumer in this process, with the CPU it and the broker spend per record (enough
    records that the broker's CPU, counted in ticks of 10 ms, is measured to a few %)."""
    topics = build_topics(f"consume{time.time_ns()}.", partitions=3, retry_steps=1)
    await ensure_topics(bootstrap, [topics.alerts])
    records: list[tuple[bytes | None, bytes | None]] = list(alerts)
    await produce(bootstrap, topics.alerts.name, records * CONSUMED_COPIES)
    consumer = make_consumer(bootstrap, topics.alerts.name, group_id=None)
    await consumer.start()
    try:
        read = 0
        started, cpu, broker_cpu = time.perf_counter(), time.process_time(), cpu_seconds(broker)
        while read < len(alerts) * CONSUMED_COPIES:
            batches = await consumer.getmany(timeout_ms=1000)
            read += sum(map(len, batches.values()))
        elapsed = time.perf_counter() - started
        cpu, broker_cpu = time.process_time() - cpu, cpu_seconds(broker) - broker_cpu
    finally:
        await consumer.stop()
    return {
        "records": read,
        "records_per_s": round(read / elapsed),
        "cpu_us_per_record": round(cpu / read * 1e6, 1),
        "broker_cpu_us_per_record": round(broker_cpu / read * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 also when the corpus is absent (with a message)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--articles", type=int, default=400)
    parser.add_argument("--alerts-per-request", default="1,100")
    args = parser.parse_args(argv)
    corpus = corpus_or_none()
    if corpus is None:
        return 0
    rules = rule_records(corpus, args.rules)
    alerts = [alert for article in alerts_of(rules, corpus[: args.articles]) for alert in article]
    with local_broker() as (bootstrap, scratch, broker):
        results = [
            asyncio.run(_deliver(bootstrap, alerts, int(n), scratch / f"notifier-{n}.log"))
            for n in args.alerts_per_request.split(",")
        ]
        consuming = asyncio.run(_consuming_alone(bootstrap, broker, alerts))
    report = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "rules": len(rules),
        "articles": args.articles,
        "alerts": len(alerts),
        "runs": results,
        "consuming_alone": consuming,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "notifier.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = "\n".join(
        [
            f"# Notifier alone: {len(rules):,} rules, the alerts of {args.articles:,} BBC articles",
            "",
            f"{len(alerts):,} alerts in the topic; one notifier, one subscription.",
            "",
            "| alerts per request | requests | alerts delivered (distinct) | alerts/s "
            "| requests/s | notifier CPU per alert |",
            "|---|---|---|---|---|---|",
            *(
                f"| {r['alerts_per_request']} | {r['requests']:,} | {r['alerts_delivered']:,} "
                f"({r['distinct_alerts_delivered']:,}) | {r['alerts_per_s']:,} "
                f"| {r['requests_per_s']:,} | {r['cpu_us_per_alert']:,} µs |"
                for r in results
            ),
            "",
            f"Consuming alone, the floor under any notifier: the same alerts read by a plain "
            f"aiokafka consumer at {consuming['records_per_s']:,} records/s, "
            f"{consuming['cpu_us_per_record']} µs of its CPU a record "
            f"(the broker's: {consuming['broker_cpu_us_per_record']} µs).",
            "",
        ]
    )
    (RESULTS / "notifier.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
