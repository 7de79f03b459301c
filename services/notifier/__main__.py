"""`python -m services.notifier`: deliver webhooks until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys

from services.common.kafka import wait_until_ready
from services.common.logs import configure_logging
from services.common.settings import NotifierSettings
from services.notifier.service import Notifier


async def _main() -> None:
    try:
        settings = NotifierSettings()
    except ValueError as exc:
        sys.exit(f"newsalert notifier: {exc}")
    configure_logging("notifier", settings.log_level)
    await wait_until_ready(settings.bootstrap_servers, 60)
    notifier = Notifier(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await notifier.start()
    try:
        await stop.wait()
    finally:
        await notifier.stop()


if __name__ == "__main__":
    asyncio.run(_main())
