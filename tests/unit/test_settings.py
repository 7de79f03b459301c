"""Settings: environment variables, defaults, and the README table that documents them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from services.common.settings import (
    ClientSettings,
    IngestSettings,
    KafkaSettings,
    LocalKafkaSettings,
    MatcherSettings,
    NotifierSettings,
    WebhookPolicySettings,
)

README = Path(__file__).resolve().parents[2] / "README.md"
SETTINGS: list[type[BaseSettings]] = [
    KafkaSettings,
    LocalKafkaSettings,
    WebhookPolicySettings,
    IngestSettings,
    ClientSettings,
    MatcherSettings,
    NotifierSettings,
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: s.__name__)
def test_every_setting_is_documented_in_the_readme(settings: type[BaseSettings]) -> None:
    readme = README.read_text("utf-8")
    missing = [
        f"NEWSALERT_{name.upper()}"
        for name in settings.model_fields
        if f"`NEWSALERT_{name.upper()}`" not in readme
    ]
    assert not missing, f"add to README.md's configuration table: {missing}"


def test_settings_are_read_from_prefixed_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSALERT_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    monkeypatch.setenv("NEWSALERT_RETRY_SCHEDULE_S", "[0.1, 0.2]")
    settings = KafkaSettings()
    assert settings.bootstrap_servers == "127.0.0.1:19092"
    assert settings.retry_schedule_s == [0.1, 0.2]


def test_defaults_are_safe_for_local_use(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(KafkaSettings.model_fields) + list(LocalKafkaSettings.model_fields):
        monkeypatch.delenv(f"NEWSALERT_{name.upper()}", raising=False)
    assert KafkaSettings().bootstrap_servers.startswith("127.0.0.1:")
    local = LocalKafkaSettings()
    assert local.kafka_port == 9092
    assert ".cache" in local.cache_dir.parts


def test_a_bad_setting_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSALERT_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        KafkaSettings()
