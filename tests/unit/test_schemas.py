"""The pydantic contracts: checked-in JSON Schemas in step with the models, and rule validation."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.article import Article
from schemas.export import JSON_DIR, stale_files
from schemas.subscription import SigningSecret, Subscription, SubscriptionIn
from schemas.watchlist import Watchlist, WatchlistRule

NOW = datetime(2023, 4, 15, 9, 30, tzinfo=UTC)


# --- JSON Schema drift ---------------------------------------------------------------------


def test_checked_in_json_schemas_match_the_models() -> None:
    assert stale_files() == [], "run `python -m schemas.export` and commit schemas/json"


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    target = tmp_path / "json"
    shutil.copytree(JSON_DIR, target)
    assert stale_files(target) == []
    return target


def test_an_altered_schema_file_is_detected(schema_copy: Path) -> None:
    path = schema_copy / "watchlist_rule.schema.json"
    schema = json.loads(path.read_text("utf-8"))
    schema["properties"]["severity"]["description"] = "edited by hand"
    path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", "utf-8")
    assert stale_files(schema_copy) == ["watchlist_rule.schema.json"]


def test_a_whitespace_change_is_drift_too(schema_copy: Path) -> None:
    path = schema_copy / "alert.schema.json"
    path.write_text(path.read_text("utf-8") + "\n", "utf-8")
    assert stale_files(schema_copy) == ["alert.schema.json"]


def test_a_missing_schema_file_is_detected(schema_copy: Path) -> None:
    (schema_copy / "article.schema.json").unlink()
    assert stale_files(schema_copy) == ["article.schema.json"]


def test_a_left_over_schema_file_is_detected(schema_copy: Path) -> None:
    (schema_copy / "old_thing.schema.json").write_text("{}\n", "utf-8")
    assert stale_files(schema_copy) == ["old_thing.schema.json"]


# --- WatchlistRule --------------------------------------------------------------------------


def _rule(**fields: Any) -> WatchlistRule:
    base: dict[str, Any] = {"id": "r", "name": "R", "any": ["x"]}
    base.update(fields)
    return WatchlistRule.model_validate({k: v for k, v in base.items() if v is not ...})


@pytest.mark.parametrize("rule_id", ["a", "0", "li-shangfu", "a.b_c-d", "a" * 64])
def test_valid_rule_ids(rule_id: str) -> None:
    assert _rule(id=rule_id).id == rule_id


@pytest.mark.parametrize(
    "rule_id", ["", "A", "Li", "-a", ".a", "_a", "a b", "a/b", "é", "a" * 65, "a:b"]
)
def test_invalid_rule_ids(rule_id: str) -> None:
    with pytest.raises(ValidationError):
        _rule(id=rule_id)


@pytest.mark.parametrize("name", ["x", "Li Shangfu", "n" * 200])
def test_valid_names(name: str) -> None:
    assert _rule(name=name).name == name


@pytest.mark.parametrize("name", ["", "n" * 201])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ValidationError):
        _rule(name=name)


@pytest.mark.parametrize("severity", ["info", "low", "medium", "high", "critical"])
def test_every_severity_of_rules_md(severity: str) -> None:
    assert _rule(severity=severity).severity == severity


@pytest.mark.parametrize("severity", ["urgent", "HIGH", "", "warning"])
def test_unknown_severities_are_refused(severity: str) -> None:
    with pytest.raises(ValidationError):
        _rule(severity=severity)


def test_severity_defaults_to_medium() -> None:
    assert _rule().severity == "medium"


def test_32_tags_are_allowed_and_33_are_not() -> None:
    assert len(_rule(tags=[f"t{i}" for i in range(32)]).tags) == 32
    with pytest.raises(ValidationError):
        _rule(tags=[f"t{i}" for i in range(33)])


@pytest.mark.parametrize("tag", ["people", "a.b_c-d", "0", "-x", "t" * 64])
def test_valid_tags(tag: str) -> None:
    assert _rule(tags=[tag]).tags == [tag]


@pytest.mark.parametrize("tag", ["", "People", "a b", "t" * 65, "é"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(ValidationError):
        _rule(tags=[tag])


def test_a_rule_needs_any_or_query() -> None:
    assert _rule(any=..., query="x").query == "x"
    with pytest.raises(ValidationError, match="exactly one"):
        _rule(any=["x"], query="x")
    with pytest.raises(ValidationError, match="exactly one"):
        _rule(any=...)


def test_any_holds_1_to_1000_phrases() -> None:
    assert len(_rule(any=[f"p{i}" for i in range(1000)]).any or []) == 1000
    for bad in ([], [f"p{i}" for i in range(1001)]):
        with pytest.raises(ValidationError):
            _rule(any=bad)


@pytest.mark.parametrize("fields", [["title"], ["body"], ["title", "body"], ["body", "title"]])
def test_fields_are_a_subset_of_title_and_body(fields: list[str]) -> None:
    assert _rule(fields=fields).fields == fields


@pytest.mark.parametrize("fields", [[], ["headline"], ["title", "title"], ["title", "body", "x"]])
def test_other_fields_are_refused(fields: list[str]) -> None:
    with pytest.raises(ValidationError):
        _rule(fields=fields)


def test_unknown_rule_keys_are_refused() -> None:
    with pytest.raises(ValidationError):
        _rule(colour="red")


def test_a_watchlist_refuses_duplicate_rule_ids() -> None:
    with pytest.raises(ValidationError, match="more than once"):
        Watchlist(rules=[_rule(), _rule()])
    assert Watchlist(rules=[_rule()]).tenant == "default"


# --- Rule version ---------------------------------------------------------------------------


def test_version_is_stable_under_reordering_and_repeating_any() -> None:
    base = _rule(any=["Li Shangfu", "李尚福", "General Li"]).version()
    assert _rule(any=["General Li", "李尚福", "Li Shangfu"]).version() == base
    assert _rule(any=["李尚福", "Li Shangfu", "General Li", "李尚福"]).version() == base


def test_version_is_stable_under_reordering_of_lists() -> None:
    one = _rule(none=["a", "b"], fields=["title", "body"], languages=["en", "de"])
    two = _rule(none=["b", "a"], fields=["body", "title"], languages=["de", "en"])
    assert one.version() == two.version()


def test_version_ignores_presentation() -> None:
    base = _rule().version()
    assert _rule(name="Another name", severity="critical", tags=["x"]).version() == base


def test_version_is_sixteen_hex_digits() -> None:
    version = _rule().version()
    assert len(version) == 16
    int(version, 16)


@pytest.mark.parametrize(
    "change",
    [
        {"any": ..., "query": "x"},
        {"any": ["y"]},
        {"any": ["x", "y"]},
        {"none": ["z"]},
        {"stem": True},
        {"fields": ["title"]},
        {"languages": ["en"]},
        {"sources": ["reuters.com"]},
    ],
    ids=lambda c: ",".join(c),
)
def test_version_changes_with_matching_semantics(change: dict[str, Any]) -> None:
    assert _rule(**change).version() != _rule().version()


def test_version_changes_with_query() -> None:
    one = _rule(any=..., query="china NEAR/5 russia")
    two = _rule(any=..., query="china NEAR/6 russia")
    assert one.version() != two.version()


# --- Article and Subscription ---------------------------------------------------------------


def test_article_requires_a_timezone_aware_received_at() -> None:
    fields: dict[str, Any] = {"article_id": "a1", "title": "t"}
    assert Article(**fields, received_at=NOW).received_at == NOW
    plus_two = datetime(2023, 4, 15, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    assert Article(**fields, received_at=plus_two).received_at == plus_two
    with pytest.raises(ValidationError, match="timezone"):
        Article(**fields, received_at=datetime(2023, 4, 15, 9, 30))  # noqa: DTZ001
    with pytest.raises(ValidationError, match="timezone"):
        Article.model_validate({**fields, "received_at": "2023-04-15T09:30:00"})
    with pytest.raises(ValidationError):
        Article(**fields)  # type: ignore[call-arg]


def test_article_parses_an_iso_timestamp_with_zone() -> None:
    item = Article.model_validate(
        {"article_id": "a1", "received_at": "2023-04-15T09:30:00Z", "body": "x"}
    )
    assert item.received_at == NOW


def _subscription() -> Subscription:
    return Subscription(
        id="hook",
        tenant="acme",
        url="https://example.com/hook",
        secrets=[SigningSecret(secret="whsec_c2VjcmV0IHZhbHVl", created_at=NOW)],  # type: ignore[arg-type]
        created_at=NOW,
        updated_at=NOW,
    )


def test_subscription_secrets_are_masked_when_printed() -> None:
    subscription = _subscription()
    assert "whsec_c2VjcmV0IHZhbHVl" not in repr(subscription)
    assert "whsec_c2VjcmV0IHZhbHVl" not in str(subscription)
    assert "**********" in repr(subscription)
    assert "whsec_c2VjcmV0IHZhbHVl" not in repr(subscription.secrets[0])


def test_subscription_secrets_serialise_in_json() -> None:
    subscription = _subscription()
    data = json.loads(subscription.model_dump_json())
    assert data["secrets"][0]["secret"] == "whsec_c2VjcmV0IHZhbHVl"
    again = Subscription.model_validate_json(subscription.model_dump_json())
    assert again.secrets[0].secret.get_secret_value() == "whsec_c2VjcmV0IHZhbHVl"


def test_a_subscription_takes_one_alert_per_request_unless_it_asks_for_more() -> None:
    assert SubscriptionIn(url="https://hooks.example/in").alerts_per_request == 1
    assert SubscriptionIn(url="https://hooks.example/in", alerts_per_request=500)


@pytest.mark.parametrize("count", [0, -1, 501])
def test_alerts_per_request_outside_1_to_500_is_refused_with_where(count: int) -> None:
    with pytest.raises(ValidationError) as refused:
        SubscriptionIn(url="https://hooks.example/in", alerts_per_request=count)
    assert refused.value.errors()[0]["loc"] == ("alerts_per_request",)
