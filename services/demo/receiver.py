"""A real webhook receiver on loopback: scripted answers, every request recorded."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from services.notifier.signing import BATCH_ID_PREFIX, alerts_of


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()
    wall: float  # time.time(), to compare with timestamps from other processes


@dataclass(frozen=True)
class Answer:
    """What to answer: a status, headers, and an optional delay before answering."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: bytes = b""


@dataclass
class Receiver:
    """Answers each path from its script (then 200), and remembers every request."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    _scripts: dict[str, deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    _default: dict[str, Answer] = field(default_factory=dict)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _tallied: int = 0  # requests whose alerts `alerts` has counted
    _alerts: int = 0

    def script(self, path: str, *answers: Answer, then: Answer | None = None) -> str:
        """Answer `path` with `answers` in turn, then with `then` (default 200); its URL."""
        self._scripts[path].extend(answers)
        if then is not None:
            self._default[path] = then
        return self.url + path

    def at(self, path: str) -> list[Received]:
        """The requests to `path`, in arrival order."""
        return [r for r in self.requests if r.path == path]

    def alerts(self) -> int:
        """How many alerts the requests so far carried: one each, or a batch's (read once)."""
        for request in self.requests[self._tallied :]:
            # Only a batch's body needs reading: a single alert's message is one alert.
            batch = request.headers.get("webhook-id", "").startswith(BATCH_ID_PREFIX)
            self._alerts += len(alerts_of(request.body)) if batch else 1
        self._tallied = len(self.requests)
        return self._alerts

    async def wait_for(
        self, done: Callable[[list[Received]], bool], timeout_s: float = 30.0
    ) -> list[Received]:
        """Wait until `done(requests)` holds; a TimeoutError says how many arrived."""
        async with self._arrived:
            try:
                await asyncio.wait_for(
                    self._arrived.wait_for(lambda: done(self.requests)), timeout_s
                )
            except TimeoutError:
                raise TimeoutError(f"only {len(self.requests)} requests arrived") from None
        return self.requests

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.path
        script = self._scripts[path]
        answer = script.popleft() if script else self._default.get(path, Answer())
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)  # the slow endpoint being simulated
        async with self._arrived:
            self.requests.append(
                Received(path, dict(request.headers), body, time.monotonic(), time.time())
            )
            self._arrived.notify_all()
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)


@asynccontextmanager
async def serving(app: web.Application, port: int = 0) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 (a free port by default); yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    host, bound = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_receiver(
    port: int = 0, receiver: Receiver | None = None
) -> AsyncIterator[Receiver]:
    """A receiver listening on 127.0.0.1 (a free port by default).

    Pass the `receiver` of an earlier run and its port to bring it back after an outage,
    with everything it recorded.
    """
    receiver = receiver or Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver._handle)
    async with serving(app, port) as url:
        receiver.url = url
        yield receiver
