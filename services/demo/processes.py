"""Services as separate processes, as they run in production: started, awaited, killed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]  # the repository: `python -m` runs from here


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """`python -m <module>` with NEWSALERT_* settings, its output in a log file."""

    module: str
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        """Where its HTTP endpoints (/healthz, /readyz, /metrics) answer."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Launch the process (returns at once; see `wait_ready`)."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", self.module],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Return once /readyz answers 200; fail with the log's tail if the process died."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.module} exited:\n{self.tail()}")
                try:
                    async with http.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{self.module} not ready:\n{self.tail()}")
                await asyncio.sleep(0.1)  # a separate process: nothing to await but its port

    def kill(self) -> None:
        """kill -9: no chance to commit or flush anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM and wait; kill -9 if it does not exit in time. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        return self.process.returncode

    def tail(self, lines: int = 40) -> str:
        """The end of its log."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])


async def metric(service: ServiceProcess, name: str, **labels: str) -> float:
    """The sum of a metric's samples on the service's /metrics whose labels include `labels`."""
    async with aiohttp.ClientSession() as http, http.get(service.url + "/metrics") as response:
        text = await response.text()
    total = 0.0
    for row in text.splitlines():
        if not row.startswith(name) or row.startswith("#"):
            continue
        series, _, value = row.rpartition(" ")
        found_name, _, label_text = series.partition("{")
        if found_name != name:
            continue
        if all(f'{key}="{wanted}"' in label_text for key, wanted in labels.items()):
            total += float(value)
    return total
