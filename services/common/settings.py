"""Typed configuration for every process, read from `NEWSALERT_*` environment variables.

Settings objects are built in each entry point (`__main__`, the CLI, test fixtures) and passed
down explicitly; nothing reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_ENV = SettingsConfigDict(env_prefix="NEWSALERT_", extra="ignore")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "newsalert"


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
