"""The demo's scenario, step by step, for `make demo` and the end-to-end tests alike.

Each step talks to the running services only through their public surfaces: the ingest
API, the matcher's /metrics, the webhooks the receiver gets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import yaml

from schemas.alert import Alert
from services.demo.processes import ROOT, metric
from services.demo.receiver import Receiver
from services.demo.report import Delivered
from services.demo.stack import Stack
from services.notifier.signing import VerificationError, alerts_of, verify

SEEDS = ROOT / "seeds"

Say = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which."""


async def call(http: aiohttp.ClientSession, key: str, method: str, url: str, **kwargs: Any) -> Any:
    """One API request with the tenant's key; its JSON body, or a DemoError."""
    headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    async with http.request(method, url, headers=headers, **kwargs) as response:
        body = await response.json() if response.content_type == "application/json" else None
        if response.status >= 300:
            raise DemoError(f"{method} {url} answered {response.status}: {body}")
        return body


async def configure(
    http: aiohttp.ClientSession, api: str, key: str, receiver: Receiver, say: Say = _quiet
) -> dict[str, str]:
    """Apply the seed watchlist and subscriptions; the subscriptions' secrets by id."""
    watchlist = (SEEDS / "watchlist.yaml").read_bytes()
    applied = await call(
        http,
        key,
        "POST",
        f"{api}/v1/watchlists:apply",
        data=watchlist,
        headers={"Content-Type": "application/yaml"},
    )
    say(f"watchlist applied: {', '.join(applied['created'] + applied['updated'])}")
    document = (SEEDS / "subscriptions.yaml").read_text("utf-8")
    document = document.replace("${RECEIVER_URL}", receiver.url)
    found: dict[str, str] = {}
    for sub in yaml.safe_load(document)["subscriptions"]:
        sub_id = sub.pop("id")
        created = await call(http, key, "PUT", f"{api}/v1/subscriptions/{sub_id}", json=sub)
        found[sub_id] = created["secret"]
        say(f"subscription {sub_id} -> {sub['url']} (secret {created['secret'][:10]}…)")
    return found


async def ingest_seeds(
    http: aiohttp.ClientSession, api: str, key: str, say: Say = _quiet
) -> list[str]:
    """Post every seed article as scraped text with its URL; their article ids."""
    sources: dict[str, str] = yaml.safe_load((SEEDS / "sources.yaml").read_text("utf-8"))
    ids = []
    for path in sorted(SEEDS.glob("*.txt")):
        receipt = await call(
            http,
            key,
            "POST",
            f"{api}/v1/articles/text",
            params={"url": sources[path.name], "language": "en"},
            data=path.read_bytes(),
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        ids.append(receipt["article_id"])
        say(f"article {path.name}: {receipt['status']} as {receipt['article_id']}")
    return ids


async def await_deliveries(stack: Stack, receiver: Receiver, articles: int) -> int:
    """How many alerts the matcher produced for the seeds, once it has matched them all."""
    matcher = stack.processes["matcher"]
    deadline = time.monotonic() + 60
    while await metric(matcher, "newsalert_matcher_articles_total") < articles:
        if time.monotonic() > deadline:
            raise DemoError("the matcher did not consume the seed articles within 60 s")
        await asyncio.sleep(0.1)  # another process: its metrics are what we can watch
    alerts = int(await metric(matcher, "newsalert_matcher_alerts_total"))
    await receiver.wait_for(lambda _: receiver.alerts() >= alerts, timeout_s=60)
    return alerts


def verified(receiver: Receiver, secrets_by_id: dict[str, str]) -> list[Delivered]:
    """Every webhook received, its alert decoded and its signature checked."""
    rows: list[Delivered] = []
    for request in receiver.requests:
        secret = secrets_by_id[request.path.rsplit("/", 1)[-1]]
        try:
            verify(secret, request.body, request.headers, datetime.now(UTC))
            ok = True
        except VerificationError:
            ok = False
        rows.extend(Delivered(Alert.model_validate(alert), ok) for alert in alerts_of(request.body))
    return rows
