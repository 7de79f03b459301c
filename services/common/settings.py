"""Typed configuration for every process, read from `NEWSALERT_*` environment variables.

Settings objects are built in each entry point (`__main__`, the CLI, test fixtures) and passed
down explicitly; nothing reads the environment at import time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_ENV = SettingsConfigDict(env_prefix="NEWSALERT_", extra="ignore")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "newsalert"


class LoggingSettings(BaseSettings):
    """How much a service logs (JSON lines on stderr)."""

    model_config = _ENV

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level logged: debug, info, warning or error."
    )


class KafkaSettings(BaseSettings):
    """How to reach Kafka and how the topics are laid out."""

    model_config = _ENV

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of brokers."
    )
    topic_prefix: str = Field(
        default="newsalert.",
        pattern=r"^[A-Za-z0-9._-]{0,100}$",
        description="Prepended to every topic name, so several installations can share a cluster.",
    )
    partitions: int = Field(
        default=6, ge=1, le=1000, description="Partitions of the articles and alerts topics."
    )
    replication_factor: int = Field(
        default=1, ge=1, le=16, description="Replication factor of every topic newsalert creates."
    )
    retry_schedule_s: list[float] = Field(
        default=[5, 30, 120, 600, 1800, 3600, 10800],
        min_length=1,
        max_length=20,
        description="Delay before each webhook retry; one retry topic per step.",
    )


class ConsumerSettings(BaseSettings):
    """What every service that consumes records in a group shares."""

    model_config = _ENV

    lag_interval_s: float = Field(
        default=5,
        gt=0,
        description="Seconds between readings of the consumer lag, asked of the broker.",
    )


class LocalKafkaSettings(BaseSettings):
    """The one-node broker that `newsalert kafka up` and the test harness run on loopback."""

    model_config = _ENV

    kafka_version: str = Field(
        default="4.1.1", description="Apache Kafka version fetched from Maven Central."
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where jars, broker data and logs live, outside the repository.",
    )
    kafka_port: int = Field(default=9092, ge=1, le=65535, description="Broker client port.")
    kafka_controller_port: int = Field(
        default=9093, ge=1, le=65535, description="KRaft controller port."
    )


class WebhookPolicySettings(BaseSettings):
    """Which webhook URLs may be registered and called (SSRF protection, issue 6)."""

    model_config = _ENV

    webhook_allow_http: bool = Field(
        default=False, description="Allow http:// webhook URLs (local use only)."
    )
    webhook_allow: list[str] = Field(
        default_factory=list,
        description="Networks or host names webhooks may reach despite SSRF rules (JSON list), "
        'e.g. ["127.0.0.0/8"] for local tests.',
    )


class IngestSettings(KafkaSettings, WebhookPolicySettings, LoggingSettings):
    """The ingest service: HTTP API, limits, API keys, feeds."""

    model_config = _ENV

    ingest_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds.")
    ingest_port: int = Field(default=8080, ge=0, le=65535, description="HTTP API port.")
    api_keys: str = Field(
        default="",
        description="API keys as `tenant:sha256hex` pairs, comma-separated "
        "(`newsalert keys new` prints one).",
    )
    api_keys_file: Path | None = Field(
        default=None, description="A file of `tenant:sha256hex` lines, read at start."
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    max_batch: int = Field(
        default=1000, ge=1, le=100_000, description="Most articles in one NDJSON batch."
    )
    dedupe_window_h: float = Field(
        default=72, gt=0, description="How long an article id is remembered as a duplicate."
    )
    secret_overlap_h: float = Field(
        default=24, gt=0, description="How long an old webhook secret still signs after rotation."
    )
    feeds: list[str] = Field(
        default_factory=list, description="RSS/Atom feed URLs to poll (JSON list)."
    )
    feed_interval_s: float = Field(default=300, gt=0, description="Seconds between feed polls.")


class MatcherSettings(KafkaSettings, ConsumerSettings, LoggingSettings):
    """The matcher worker: its consumer group, its web port, story grouping."""

    model_config = _ENV

    matcher_group: str = Field(
        default="newsalert-matcher",
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="Consumer group (faust app id) shared by every matcher worker.",
    )
    matcher_host: str = Field(default="127.0.0.1", description="Address /metrics etc. bind.")
    matcher_port: int = Field(
        default=8081, ge=0, le=65535, description="Port of /healthz, /readyz and /metrics."
    )
    story_window_h: float = Field(
        default=72, gt=0, description="How long a story stays open to new copies."
    )
    matcher_max_in_flight: int = Field(
        default=2000,
        ge=1,
        le=1_000_000,
        description="Articles matched whose alerts Kafka has not yet stored; at this many the "
        "worker waits.",
    )
    matcher_data_dir: Path = Field(
        default=Path(tempfile.gettempdir()) / "newsalert-matcher",
        description="Where faust keeps its per-app folder (its state lives in Kafka).",
    )


class ClientSettings(BaseSettings):
    """The `newsalert` command as a client of the ingest API (`--api-url`, `--api-key`)."""

    model_config = _ENV

    api_url: str = Field(
        default="http://127.0.0.1:8080",
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Base URL of the ingest HTTP API the command talks to.",
    )
    api_key: SecretStr = Field(
        default=SecretStr(""),
        description="The API key the command sends as `Authorization: Bearer`; never printed.",
    )


class NotifierSettings(KafkaSettings, ConsumerSettings, WebhookPolicySettings, LoggingSettings):
    """The notifier: webhook delivery limits, endpoint health, its web port."""

    model_config = _ENV

    notifier_group: str = Field(
        default="newsalert-notifier",
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="Consumer group shared by every notifier instance.",
    )
    notifier_host: str = Field(default="127.0.0.1", description="Address /metrics etc. bind.")
    notifier_port: int = Field(
        default=8082, ge=0, le=65535, description="Port of /healthz, /readyz and /metrics."
    )
    webhook_timeout_s: float = Field(
        default=10, gt=0, le=60, description="Time limit of one webhook request."
    )
    webhook_max_response_bytes: int = Field(
        default=64 * 1024, ge=0, description="Most of a webhook response body read."
    )
    webhook_concurrency: int = Field(
        default=16, ge=1, le=256, description="Requests in flight to one subscription at a time."
    )
    webhook_backlog: int = Field(
        default=200,
        ge=1,
        description="Alerts waiting for one subscription before more are deferred to "
        "the first retry queue, so a slow endpoint cannot hold up the others (with one "
        "enabled subscription there are no others, and none are deferred).",
    )
    webhook_max_wait_s: float = Field(
        default=30,
        gt=0,
        le=240,
        description="Longest a delivery waits for its endpoint before it is deferred to the "
        "first retry queue: the consumers wait for room behind it, and Kafka drops a "
        "consumer that has not polled for 5 minutes.",
    )
    retry_jitter: float = Field(
        default=0.1, ge=0, le=1, description="Retry delays vary by up to this fraction."
    )
    disable_after_h: float = Field(
        default=120,
        gt=0,
        description="A subscription whose every attempt failed for this long is disabled.",
    )
