"""`make demo`: the seeds through the whole system, on this machine, in about a minute.

Starts a Kafka broker and the three services as separate processes, plus a webhook
receiver; applies seeds/watchlist.yaml and seeds/subscriptions.yaml through the API;
posts the seed articles as scraped text; prints what the receiver got. Then stops
everything it started, also on Ctrl-C, unless --keep-running (then Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from services.demo.receiver import running_receiver
from services.demo.report import ANSI_MARK, PLAIN_MARK, render_table
from services.demo.scenario import (
    DemoError,
    await_deliveries,
    configure,
    ingest_seeds,
    verified,
)
from services.demo.stack import Stack

TENANT = "demo"


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


async def _run(keep_running: bool, work_dir: Path) -> int:
    key = "na_" + secrets.token_urlsafe(24)
    stack = Stack(work_dir, {TENANT: key})
    try:
        _say("starting Kafka (the first run fetches it through Maven)…")
        started = time.monotonic()
        bootstrap = await asyncio.to_thread(stack.start_broker)
        _say(f"Kafka ready at {bootstrap} in {time.monotonic() - started:.1f} s")
        _say("starting ingest, matcher and notifier as separate processes…")
        await stack.start()
        api = stack.url("ingest")
        async with running_receiver() as receiver, aiohttp.ClientSession() as http:
            _say(f"webhook receiver listening at {receiver.url}")
            secrets_by_id = await configure(http, api, key, receiver, _say)
            ids = await ingest_seeds(http, api, key, _say)
            sent_at = time.monotonic()
            expected = await await_deliveries(stack, receiver, len(ids))
            _say(f"{expected} signed webhooks received in {time.monotonic() - sent_at:.2f} s")
            print()
            mark = ANSI_MARK if sys.stdout.isatty() else PLAIN_MARK
            print(render_table(verified(receiver, secrets_by_id), mark))
            print()
            _say(f"API docs:   {api}/docs   (API key for tenant {TENANT}: {key})")
            for name in ("ingest", "matcher", "notifier"):
                _say(f"metrics:    {stack.url(name)}/metrics   ({name})")
            _say(f"logs:       {work_dir} (removed when the demo ends)")
            if keep_running:
                _say("the stack keeps running; Ctrl-C stops it")
                await asyncio.Event().wait()
        return 0
    finally:
        _say("stopping everything the demo started…")
        await asyncio.to_thread(stack.stop)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when it worked or was stopped with Ctrl-C."""
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument(
        "--keep-running", action="store_true", help="leave the stack up until Ctrl-C"
    )
    args = parser.parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="newsalert-demo-"))
    try:
        code = asyncio.run(_run(args.keep_running, work_dir))
    except KeyboardInterrupt:
        code = 0
    except (DemoError, TimeoutError, RuntimeError) as exc:
        _say(f"failed: {exc}")
        _say(f"the services' logs are kept in {work_dir}")
        return 1
    with contextlib.suppress(OSError):
        shutil.rmtree(work_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
