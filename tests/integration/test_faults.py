"""Faults while a stream flows: kill -9 of a service, a broker restart, a receiver outage.

For each, the distinct alert ids the webhook receiver gets equal the ids `newsalert match`
computes offline for the same articles and rules: nothing is lost. Duplicates (the same id
twice) are allowed by at-least-once delivery, and counted.

`make test` runs a short stream (NEWSALERT_FAULT_ARTICLES, 300 by default); `make faults`
runs the 5,000 BBC articles and 1,000 rules of issue 8.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from schemas.article import Article
from schemas.watchlist import WatchlistRule
from services.common.broker import LocalBroker
from services.common.settings import LocalKafkaSettings
from services.demo.processes import free_port
from services.demo.receiver import Receiver, running_receiver
from services.demo.scenario import call
from services.demo.stack import Stack
from tests.support.workload import corpus_workload, expected_alert_ids

ARTICLES = int(os.environ.get("NEWSALERT_FAULT_ARTICLES", "300"))
RULES = int(os.environ.get("NEWSALERT_FAULT_RULES", "1000"))
DEADLINE_S = 120 + ARTICLES * 0.1
TENANT = "faults"
BATCH = 100
# Retries must outlast a receiver outage of a few seconds: 0.5 + 1 + 2 + 4 + 8 s.
RETRY_SCHEDULE_S = [0.5, 1, 2, 4, 8]

Fault = Callable[[float], Awaitable[None]]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of these tests' own, on fixed ports, so that it can be restarted."""
    local = LocalKafkaSettings()
    own = LocalBroker(
        data_dir=tmp_path_factory.mktemp("kafka-faults"),
        cache_dir=local.cache_dir,
        version=local.kafka_version,
        port=free_port(),
        controller_port=free_port(),
    )
    own.ensure_jars()
    own.start(wait_s=90)
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="module")
def workload() -> tuple[list[WatchlistRule], list[Article], set[str]]:
    rules, articles = corpus_workload(ARTICLES, RULES)
    return rules, articles, expected_alert_ids(TENANT, rules, articles)


@pytest.fixture
async def stack(broker: LocalBroker, tmp_path: Path) -> AsyncIterator[Stack]:
    bootstrap = broker.status().bootstrap
    assert bootstrap is not None
    running = Stack(
        tmp_path,
        {TENANT: "na_" + secrets.token_urlsafe(24)},
        prefix=f"faults-{uuid.uuid4().hex[:8]}.",
        bootstrap=bootstrap,
        env={"NEWSALERT_RETRY_SCHEDULE_S": json.dumps(RETRY_SCHEDULE_S)},
    )
    await running.start()
    try:
        yield running
    finally:
        await asyncio.to_thread(running.stop)


class Run:
    """One stream through the stack, with faults at fractions of the expected alerts."""

    def __init__(self, stack: Stack, receiver: Receiver, expected: set[str]) -> None:
        self.stack = stack
        self.receiver = receiver
        self.expected = expected
        self.key = stack.api_keys[TENANT]

    def delivered(self) -> set[str]:
        return {r.headers["webhook-id"] for r in self.receiver.requests}

    async def configure(self, http: aiohttp.ClientSession, rules: list[WatchlistRule]) -> None:
        api = self.stack.url("ingest")
        watchlist = {
            "tenant": TENANT,
            "rules": [r.model_dump(mode="json", exclude_none=True) for r in rules],
        }
        await call(http, self.key, "POST", f"{api}/v1/watchlists:apply", json=watchlist)
        subscription = {
            "url": self.receiver.url + "/hook",
            "filter": {"first_of_story_only": False},
        }
        await call(http, self.key, "PUT", f"{api}/v1/subscriptions/hook", json=subscription)

    async def send(self, http: aiohttp.ClientSession, articles: list[Article]) -> None:
        """Post the stream in NDJSON batches; a batch without a 2xx is sent again."""
        for start in range(0, len(articles), BATCH):
            lines = "\n".join(
                json.dumps({"id": a.article_id, "title": a.title, "body": a.body})
                for a in articles[start : start + BATCH]
            )
            while True:
                try:
                    async with http.post(
                        self.stack.url("ingest") + "/v1/articles",
                        data=lines.encode(),
                        headers={
                            "Authorization": f"Bearer {self.key}",
                            "Content-Type": "application/x-ndjson",
                        },
                    ) as response:
                        if response.status < 300:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)  # what a client does after a failed request

    async def go(
        self, rules: list[WatchlistRule], articles: list[Article], faults: dict[float, Fault]
    ) -> int:
        """Stream, inject each fault when its fraction of alerts arrived, await them all."""
        async with aiohttp.ClientSession() as http:
            await self.configure(http, rules)
            sender = asyncio.create_task(self.send(http, articles))
            try:
                for fraction, fault in sorted(faults.items()):
                    needed = fraction * len(self.expected)
                    await self.receiver.wait_for(
                        lambda _, needed=needed: len(self.delivered()) >= needed, DEADLINE_S
                    )
                    await fault(fraction)
                await self.receiver.wait_for(
                    lambda _: self.delivered() >= self.expected, DEADLINE_S
                )
                await sender
            finally:
                sender.cancel()
        delivered = self.delivered()
        assert delivered == self.expected, f"lost {len(self.expected - delivered)}"
        return len(self.receiver.requests) - len(delivered)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


def _report(name: str, expected: set[str], duplicates: int, started: float) -> None:
    print(
        f"\n{name}: {ARTICLES} articles, {RULES} rules, {len(expected)} alert ids delivered, "
        f"0 lost, {duplicates} duplicates, {time.monotonic() - started:.1f} s"
    )


@pytest.mark.parametrize("service", ["matcher", "notifier"])
async def test_kill_9_of_a_service_at_20_50_and_80_percent_loses_no_alert(
    service: str,
    stack: Stack,
    receiver: Receiver,
    workload: tuple[list[WatchlistRule], list[Article], set[str]],
) -> None:
    rules, articles, expected = workload

    async def kill_and_restart(_: float) -> None:
        stack.processes[service].kill()
        stack.start_service(service)

    started = time.monotonic()
    run = Run(stack, receiver, expected)
    duplicates = await run.go(rules, articles, dict.fromkeys((0.2, 0.5, 0.8), kill_and_restart))
    _report(f"kill -9 {service} x3", expected, duplicates, started)


async def test_a_broker_restart_mid_stream_loses_no_alert(
    broker: LocalBroker,
    stack: Stack,
    receiver: Receiver,
    workload: tuple[list[WatchlistRule], list[Article], set[str]],
) -> None:
    rules, articles, expected = workload

    async def restart(_: float) -> None:
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start, 90)

    started = time.monotonic()
    duplicates = await Run(stack, receiver, expected).go(rules, articles, {0.5: restart})
    _report("broker restart", expected, duplicates, started)


async def test_a_receiver_outage_mid_stream_loses_no_alert(
    stack: Stack, workload: tuple[list[WatchlistRule], list[Article], set[str]]
) -> None:
    rules, articles, expected = workload
    port = free_port()
    async with AsyncExitStack() as exits:
        receiver = await exits.enter_async_context(running_receiver(port))

        async def outage(_: float) -> None:
            await exits.aclose()  # connection refused from now on
            await asyncio.sleep(3)  # the outage itself
            await exits.enter_async_context(running_receiver(port, receiver))

        started = time.monotonic()
        duplicates = await Run(stack, receiver, expected).go(rules, articles, {0.5: outage})
    _report("receiver down 3 s", expected, duplicates, started)


@pytest.mark.parametrize("service", ["ingest", "matcher", "notifier"])
async def test_sigterm_mid_stream_is_a_clean_stop_that_loses_nothing(
    service: str,
    stack: Stack,
    receiver: Receiver,
    workload: tuple[list[WatchlistRule], list[Article], set[str]],
) -> None:
    rules, articles, expected = workload
    exit_codes: list[int | None] = []

    async def stop_and_start(_: float) -> None:
        exit_codes.append(await asyncio.to_thread(stack.processes[service].stop))
        stack.start_service(service)
        await stack.processes[service].wait_ready()

    started = time.monotonic()
    duplicates = await Run(stack, receiver, expected).go(rules, articles, {0.5: stop_and_start})
    assert exit_codes == [0], f"{service} did not exit cleanly on SIGTERM"
    _report(f"SIGTERM {service}", expected, duplicates, started)
