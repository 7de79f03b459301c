"""The whole system on this machine: a Kafka broker and the three services as processes.

Used by `make demo` and by the end-to-end tests, so both run exactly what production runs:
`python -m services.ingest`, `python -m services.matcher`, `python -m services.notifier`,
configured only through NEWSALERT_* variables, on loopback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from services.common.broker import LocalBroker
from services.common.settings import LocalKafkaSettings
from services.demo.processes import ServiceProcess, free_port
from services.ingest.auth import hash_key

SERVICES = ("ingest", "matcher", "notifier")


@dataclass
class Stack:
    """A broker (ours, or one given) and one process per service."""

    work_dir: Path
    api_keys: dict[str, str]  # tenant -> API key
    prefix: str = "demo."
    bootstrap: str | None = None  # an already running broker; None starts one
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    _broker: LocalBroker | None = None

    def url(self, service: str) -> str:
        """Where a service's HTTP endpoints answer."""
        return self.processes[service].url

    def start_broker(self) -> str:
        """Start our own broker on free ports (fetching Kafka through Maven the first time)."""
        if self.bootstrap is None:
            local = LocalKafkaSettings()
            self._broker = LocalBroker(
                data_dir=self.work_dir / "kafka",
                cache_dir=local.cache_dir,
                version=local.kafka_version,
            )
            self._broker.ensure_jars()
            status = self._broker.start(wait_s=90)
            assert status.bootstrap is not None
            self.bootstrap = status.bootstrap
        return self.bootstrap

    def _environment(self, ports: dict[str, int]) -> dict[str, str]:
        assert self.bootstrap is not None
        return {
            "NEWSALERT_BOOTSTRAP_SERVERS": self.bootstrap,
            "NEWSALERT_TOPIC_PREFIX": self.prefix,
            "NEWSALERT_PARTITIONS": "3",
            "NEWSALERT_API_KEYS": ",".join(
                f"{tenant}:{hash_key(key)}" for tenant, key in self.api_keys.items()
            ),
            "NEWSALERT_INGEST_PORT": str(ports["ingest"]),
            "NEWSALERT_MATCHER_PORT": str(ports["matcher"]),
            "NEWSALERT_NOTIFIER_PORT": str(ports["notifier"]),
            # The demo's receiver listens on loopback over http.
            "NEWSALERT_WEBHOOK_ALLOW_HTTP": "true",
            "NEWSALERT_WEBHOOK_ALLOW": json.dumps(["127.0.0.0/8"]),
            "NEWSALERT_MATCHER_GROUP": f"{self.prefix}matcher",
            "NEWSALERT_NOTIFIER_GROUP": f"{self.prefix}notifier",
            **self.env,
        }

    def start_service(self, service: str, port: int | None = None) -> ServiceProcess:
        """Launch one service (again, after a kill: same port, same log file)."""
        previous = self.processes.get(service)
        ports = {name: p.port for name, p in self.processes.items()}
        ports.setdefault(service, port or (previous.port if previous else free_port()))
        for name in SERVICES:
            ports.setdefault(name, free_port())
        process = ServiceProcess(
            f"services.{service}",
            self._environment(ports),
            ports[service],
            self.work_dir / f"{service}.log",
        )
        process.start()
        self.processes[service] = process
        return process

    async def start(self) -> None:
        """Broker, then the three services; returns once every one is ready."""
        self.start_broker()
        ports = {name: free_port() for name in SERVICES}
        for name in SERVICES:
            self.start_service(name, ports[name])
        for name in SERVICES:
            await self.processes[name].wait_ready()

    def pids(self) -> dict[str, int]:
        """The process id of our broker (when we started one) and of each running service."""
        pids = {
            name: service.process.pid
            for name, service in self.processes.items()
            if service.process is not None and service.process.poll() is None
        }
        if self._broker is not None and (pid := self._broker.status().pid) is not None:
            pids["broker"] = pid
        return pids

    def stop(self) -> None:
        """SIGTERM every service (each finishes its work in flight), then the broker."""
        for name in reversed(SERVICES):
            if name in self.processes:
                self.processes[name].stop()
        if self._broker is not None:
            self._broker.stop()
