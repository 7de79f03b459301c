"""A notifier as a process of its own, for the tests and benchmarks that start one alone."""

from __future__ import annotations

import json
from pathlib import Path

from services.demo.processes import ServiceProcess, free_port


def notifier_process(
    bootstrap: str,
    prefix: str,
    group: str,
    retry_schedule_s: list[float],
    log: Path,
    **env: str,
) -> ServiceProcess:
    """`python -m services.notifier` (not started yet) on a free port, on topics `prefix`*
    with 3 partitions, delivering to receivers on loopback over http; `env` adds settings."""
    port = free_port()
    return ServiceProcess(
        "services.notifier",
        {
            "NEWSALERT_BOOTSTRAP_SERVERS": bootstrap,
            "NEWSALERT_TOPIC_PREFIX": prefix,
            "NEWSALERT_PARTITIONS": "3",
            "NEWSALERT_RETRY_SCHEDULE_S": json.dumps(retry_schedule_s),
            "NEWSALERT_NOTIFIER_GROUP": group,
            "NEWSALERT_NOTIFIER_PORT": str(port),
            "NEWSALERT_WEBHOOK_ALLOW_HTTP": "true",
            "NEWSALERT_WEBHOOK_ALLOW": json.dumps(["127.0.0.0/8"]),
            **env,
        },
        port,
        log,
    )
