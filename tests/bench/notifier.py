"""The notifier alone: alerts already in Kafka, out as signed webhooks to one receiver.

The end-to-end benchmark's slowest stage, measured by itself. A real broker, one
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
from services.common.kafka import encode, ensure_topics
from services.common.topics import build_topics, record_key
from services.demo.receiver import running_receiver
from services.notifier.signing import alerts_of as alerts_in
from tests.bench.broker import local_broker
from tests.bench.corpus import corpus_or_none
from tests.bench.matcher_worker import TENANT, alerts_of, rule_records
from tests.support.kafka_io import produce
from tests.support.notifier import notifier_process

RESULTS = Path(__file__).parent / "results"
SECRET = "whsec_" + base64.b64encode(b"newsalert-notifier-benchmark-key").decode()
GIVE_UP_S = 600.0


async def _deliver(
    bootstrap: str, alerts: list[tuple[bytes, bytes]], per_request: int, log: Path
) -> dict[str, float]:
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
            await receiver.wait_for(lambda rs: len(rs) >= 1, GIVE_UP_S)
            first = receiver.requests[0].wall
            in_first = len(alerts_in(receiver.requests[0].body))
            await receiver.wait_for(lambda _: receiver.alerts() >= len(alerts), GIVE_UP_S)
            last = receiver.requests[-1].wall
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
    with local_broker() as (bootstrap, scratch, _):
        results = [
            asyncio.run(_deliver(bootstrap, alerts, int(n), scratch / f"notifier-{n}.log"))
            for n in args.alerts_per_request.split(",")
        ]
    report = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "rules": len(rules),
        "articles": args.articles,
        "alerts": len(alerts),
        "runs": results,
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
            "| requests/s |",
            "|---|---|---|---|---|",
            *(
                f"| {r['alerts_per_request']} | {r['requests']:,} | {r['alerts_delivered']:,} "
                f"({r['distinct_alerts_delivered']:,}) | {r['alerts_per_s']:,} "
                f"| {r['requests_per_s']:,} |"
                for r in results
            ),
            "",
        ]
    )
    (RESULTS / "notifier.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
