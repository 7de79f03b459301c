"""The API commands' arguments, client settings and `keys new`, without a server."""

from __future__ import annotations

import json

import pytest

from services.cli.api_options import ConfigError, client_settings, table
from services.cli.main import build_parser, main
from services.cli.subscriptions import subscription_body
from services.ingest.auth import ApiKeys, hash_key

KEY = "na_unit-test-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSALERT_API_URL", raising=False)
    monkeypatch.delenv("NEWSALERT_API_KEY", raising=False)


def test_ingest_takes_paths_and_api_options() -> None:
    args = build_parser().parse_args(
        ["ingest", "seeds", "a.jsonl", "--api-url", "http://h:1", "--json", "--batch-size", "5"]
    )
    assert (args.paths, args.api_url, args.api_key, args.json) == (
        ["seeds", "a.jsonl"],
        "http://h:1",
        None,
        True,
    )
    assert args.batch_size == 5


@pytest.mark.parametrize("size", ["0", "1001", "ten"])
def test_a_batch_size_outside_1_to_1000_is_a_usage_error(
    size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["ingest", "seeds", "--batch-size", size])
    assert exit_.value.code == 2
    assert "from 1 to 1000" in capsys.readouterr().err


def test_the_ingest_help_states_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ingest", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "0 when no article was refused, 1 when some were" in help_text


@pytest.mark.parametrize(
    ("argv", "action"),
    [
        (["rules", "apply", "w.yaml", "--prune"], "apply"),
        (["rules", "list"], "list"),
        (["rules", "get", "x"], "get"),
        (["rules", "delete", "x"], "delete"),
        (["subscriptions", "list", "--json"], "list"),
        (["subscriptions", "get", "x"], "get"),
        (["subscriptions", "delete", "x"], "delete"),
        (["subscriptions", "rotate-secret", "x"], "rotate-secret"),
    ],
)
def test_every_action_parses_with_its_handler(argv: list[str], action: str) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.handler)
    assert getattr(args, f"{argv[0]}_action") == action


def test_subscription_options_become_a_subscription_body() -> None:
    args = build_parser().parse_args(
        [
            "subscriptions",
            "create",
            "desk",
            "--url",
            "https://example.com/hook",
            "--rule-ids",
            "a,b",
            "c",
            "--tags",
            "china",
            "--min-severity",
            "high",
            "--every-alert",
            "--alerts-per-request",
            "50",
        ]
    )
    assert args.subscription_id == "desk"
    assert subscription_body(args) == {
        "url": "https://example.com/hook",
        "description": "",
        "enabled": True,
        "alerts_per_request": 50,
        "filter": {
            "rule_ids": ["a", "b", "c"],
            "tags": ["china"],
            "min_severity": "high",
            "first_of_story_only": False,
        },
    }


def test_a_subscription_by_default_wants_the_first_alert_of_each_story() -> None:
    args = build_parser().parse_args(
        ["subscriptions", "create", "desk", "--url", "https://example.com/hook"]
    )
    assert subscription_body(args)["filter"] == {
        "rule_ids": [],
        "tags": [],
        "min_severity": "info",
        "first_of_story_only": True,
    }


def test_an_unknown_severity_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["subscriptions", "create", "d", "--url", "https://x.example", "--min-severity", "x"]
        )


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSALERT_API_URL", "http://env.example:1")
    monkeypatch.setenv("NEWSALERT_API_KEY", KEY)
    from_env = client_settings(None, None)
    assert (from_env.api_url, from_env.api_key.get_secret_value()) == ("http://env.example:1", KEY)
    flagged = client_settings("https://flag.example/base", "na_other-key-000000000000")
    assert flagged.api_url == "https://flag.example/base"
    assert flagged.api_key.get_secret_value() == "na_other-key-000000000000"
    assert KEY not in repr(from_env)


def test_the_default_api_is_local() -> None:
    assert client_settings(None, KEY).api_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("url", "key", "message"),
    [
        (None, None, "no API key"),
        (None, "", "no API key"),
        (None, "na_key with space", "characters no API key has"),
        (None, "na_key\nX-Forged: 1", "characters no API key has"),
        ("ftp://example.com", KEY, "must look like http://"),
        ("http://", KEY, "must look like http://"),
    ],
)
def test_missing_or_malformed_settings_are_refused_without_echoing_the_key(
    url: str | None, key: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        client_settings(url, key)
    if key:
        assert key not in str(error.value)


def test_a_missing_key_exits_2_before_any_request(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 (discard) would refuse the connection: exit 2 shows no request was tried.
    code = main(["rules", "list", "--api-url", "http://127.0.0.1:9"])
    assert code == 2
    assert "no API key" in capsys.readouterr().err


def test_ingest_of_a_missing_path_exits_2_before_any_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["ingest", "no/such/folder", "--api-url", "http://127.0.0.1:9", "--api-key", KEY])
    assert code == 2
    err = capsys.readouterr().err
    assert "no/such/folder: no such file or folder" in err
    assert "nothing was sent" in err


def test_keys_new_prints_a_key_and_the_entry_ingest_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys", "new", "--tenant", "acme", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["entry"] == f"acme:{hash_key(made['key'])}"
    assert ApiKeys.parse(made["entry"]).tenant_for(f"Bearer {made['key']}") == "acme"


def test_keys_new_prints_two_labelled_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--tenant", "acme"]) == 0
    out, err = capsys.readouterr()
    key_line, entry_line = out.splitlines()
    key = key_line.removeprefix("key:").strip()
    assert entry_line.removeprefix("entry:").strip() == f"acme:{hash_key(key)}"
    assert "NEWSALERT_API_KEYS" in err


def test_keys_new_refuses_a_malformed_tenant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--tenant", "Not A Tenant"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "must match" in err


def test_a_table_aligns_its_columns() -> None:
    assert table(["ID", "NAME"], [["a", "first"], ["longer-id", ""]]) == (
        "ID         NAME\na          first\nlonger-id"
    )
