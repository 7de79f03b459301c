"""Structured logs: one JSON object per line, the same shape in every service.

Operators follow one article or alert through ingest, matcher and notifier by searching
for its `article_id` or `alert_id`; every log call that concerns one passes it in `extra`,
and this formatter puts every such field into the line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "service", "logger", "message", **extra}`, plus the traceback."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line for `record`."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def json_handler(service: str) -> logging.Handler:
    """A stderr handler writing JSON lines for `service`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    return handler


def configure_logging(service: str, level: str) -> None:
    """Send every log record of this process to stderr as JSON, at `level` and above."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(json_handler(service))
    root.setLevel(level.upper())
    # Libraries chatter at INFO (connections, rebalances); keep them at WARNING unless asked.
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
