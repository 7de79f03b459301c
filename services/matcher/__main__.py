"""`python -m services.matcher`: one matcher worker, until SIGTERM or Ctrl-C.

Start as many as there are cores to spare: workers of one `NEWSALERT_MATCHER_GROUP` split
the article partitions between them, and each holds every rule.
"""

from __future__ import annotations

import asyncio
import sys

import faust

from services.common.kafka import ensure_topics, wait_until_ready
from services.common.logs import configure_logging
from services.common.settings import MatcherSettings
from services.matcher.worker import MatcherWorker


async def prepare(settings: MatcherSettings, worker: MatcherWorker) -> None:
    """Wait for the broker, then create the worker's topics if they are missing."""
    await wait_until_ready(settings.bootstrap_servers, 60)
    await ensure_topics(
        settings.bootstrap_servers, worker.topics.all(), settings.replication_factor
    )


def main() -> None:
    """Create the topics if needed, then run the faust worker (it handles SIGTERM)."""
    try:
        settings = MatcherSettings()
    except ValueError as exc:
        sys.exit(f"newsalert matcher: {exc}")
    configure_logging("matcher", settings.log_level)
    worker = MatcherWorker(settings)
    asyncio.run(prepare(settings, worker))
    # A fresh loop for faust: asyncio.run closed the one above.
    asyncio.set_event_loop(asyncio.new_event_loop())
    # Our JSON logging stays: faust must not install its own console handlers.
    faust.Worker(worker.app, quiet=True, override_logging=False).execute_from_commandline()


if __name__ == "__main__":
    main()
