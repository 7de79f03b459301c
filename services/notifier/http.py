"""Webhook HTTP: keep-alive pools, a time limit, no redirects, a capped read, SSRF-checked DNS.

The URL was checked when the subscription was registered, but a name can resolve elsewhere
later (DNS rebinding). So the connector's resolver filters every answer through the same
policy, at connection time, and only the allowed addresses are ever connected to.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from services.common.ssrf import UrlPolicy, UrlRefused, check_url, filter_resolved

# An attempt's error as its audit record and the retry task keep it (each keeps every
# attempt's): bounded, so that what wraps the largest alert still fits in a Kafka record.
MAX_ERROR_CHARS = 500


class GuardedResolver(AbstractResolver):
    """A resolver that only returns addresses the URL policy allows."""

    def __init__(self, policy: UrlPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host`, then drop every answer the policy refuses.

        Raises:
            UrlRefused: no answer is allowed.
        """
        answers = await self._inner.resolve(host, port, family)
        allowed = set(filter_resolved(host, [a["host"] for a in answers], self._policy))
        return [a for a in answers if a["host"] in allowed]

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class Response:
    """What one attempt came to: a status, or an error without one."""

    status: int | None
    error: str | None
    retry_after: str | None
    seconds: float


class WebhookClient:
    """POSTs webhook messages over one pooled session."""

    def __init__(
        self,
        policy: UrlPolicy,
        timeout_s: float,
        max_response_bytes: int,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_response_bytes = max_response_bytes
        self._resolver = resolver or GuardedResolver(policy)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the connection pool (call inside the event loop)."""
        connector = aiohttp.TCPConnector(
            resolver=self._resolver, limit=512, limit_per_host=32, ttl_dns_cache=60
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def close(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """One attempt; never raises for network trouble, it is reported in the result."""
        assert self._session is not None, "start() first"
        started = time.perf_counter()
        try:
            target = check_url(url, self._policy)
            async with self._session.post(
                target.url, data=body, headers=headers, allow_redirects=False
            ) as reply:
                # Read (and drop) at most the cap, so the connection can be reused when the
                # body is small and a huge body cannot hold us.
                await reply.content.read(self._max_response_bytes)
                return Response(
                    reply.status, None, reply.headers.get("Retry-After"), _since(started)
                )
        except UrlRefused as exc:
            return Response(
                None, f"refused: {exc.message}"[:MAX_ERROR_CHARS], None, _since(started)
            )
        except TimeoutError:
            return Response(None, "timeout", None, _since(started))
        except aiohttp.ClientError as exc:
            return Response(None, _describe(exc), None, _since(started))


def _describe(exc: Any) -> str:
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, UrlRefused):
        return f"refused: {cause.message}"[:MAX_ERROR_CHARS]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_CHARS]


def _since(started: float) -> float:
    return time.perf_counter() - started
