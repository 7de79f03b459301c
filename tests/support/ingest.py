"""The ingest service in-process on a free loopback port, for tests that feed the pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from services.common.settings import IngestSettings
from services.ingest.auth import hash_key
from services.ingest.service import IngestService

RETRY_SCHEDULE_S = [1.0, 2.0, 3.0]  # three retry topics, as the `topics` fixture creates


def ingest_settings(
    bootstrap: str, prefix: str, keys: dict[str, str], **overrides: Any
) -> IngestSettings:
    """Settings for a test: `keys` maps tenant -> API key; webhooks may reach loopback."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic_prefix": prefix,
        "partitions": 3,
        "retry_schedule_s": RETRY_SCHEDULE_S,
        "api_keys": ",".join(f"{tenant}:{hash_key(key)}" for tenant, key in keys.items()),
        "webhook_allow_http": True,
        "webhook_allow": ["127.0.0.0/8"],
        "ingest_port": 0,
    }
    options.update(overrides)
    return IngestSettings(**options)


@dataclass
class IngestClient:
    """A running ingest service and an HTTP session to call it with one tenant's key."""

    url: str
    service: IngestService
    http: aiohttp.ClientSession
    key: str

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """One request; returns (status, parsed JSON body or text)."""
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as r:
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, await r.text()


@asynccontextmanager
async def running_ingest(settings: IngestSettings, key: str) -> AsyncIterator[IngestClient]:
    """Start the service, yield a client for it, stop it."""
    service = IngestService(settings)
    state = await service.start()
    port = await service.serve(state, port=0)
    try:
        async with aiohttp.ClientSession() as http:
            yield IngestClient(f"http://127.0.0.1:{port}", service, http, key)
    finally:
        await service.stop()
