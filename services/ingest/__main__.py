"""`python -m services.ingest`: run the ingest API until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys

from services.common.logs import configure_logging
from services.common.settings import IngestSettings
from services.ingest.service import IngestService


async def _main() -> None:
    try:
        settings = IngestSettings()
        configure_logging("ingest", settings.log_level)
        service = IngestService(settings)
    except (ValueError, OSError) as exc:  # bad keys, feed URLs or settings: say which, exit
        sys.exit(f"newsalert ingest: {exc}")
    state = await service.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await service.serve(state)
    try:
        await stop.wait()
    finally:
        await service.stop()


if __name__ == "__main__":
    asyncio.run(_main())
