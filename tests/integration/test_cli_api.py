"""The `newsalert` command over a real ingest service on a real Kafka broker, loopback only.

The command is synchronous (http.client) and the service runs on the test's event loop, so
in-process runs go through a worker thread; one test runs the installed entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.cli.main import main
from services.common.settings import IngestSettings
from services.common.topics import Topics
from services.ingest.service import IngestService
from tests.support.ingest import ingest_settings
from tests.support.kafka_io import record_count

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
NEWSALERT = Path(sys.executable).parent / "newsalert"
DEMO_KEY = "na_demo-key-for-cli-tests-0123456789"
ACME_KEY = "na_acme-key-for-cli-tests-0123456789"


@dataclass
class Cli:
    url: str
    topics: Topics
    bootstrap: str
    capsys: pytest.CaptureFixture[str]

    async def run(self, *argv: str, key: str = DEMO_KEY) -> tuple[int, str, str]:
        """`newsalert ARGV --api-url URL --api-key KEY` in-process: exit code, stdout, stderr."""
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, [*argv, "--api-url", self.url, "--api-key", key])
        out, err = self.capsys.readouterr()
        return code, out, err

    async def records(self, topic: str) -> int:
        """How many records `topic` holds."""
        return await record_count(self.bootstrap, topic)


def _settings(bootstrap: str, prefix: str, **overrides: Any) -> IngestSettings:
    return ingest_settings(bootstrap, prefix, {"demo": DEMO_KEY, "acme": ACME_KEY}, **overrides)


@contextlib.asynccontextmanager
async def _serving(settings: IngestSettings) -> AsyncIterator[str]:
    service = IngestService(settings)
    state = await service.start()
    port = await service.serve(state, port=0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await service.stop()


@pytest.fixture
async def cli(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[Cli]:
    async with _serving(_settings(kafka_bootstrap, topic_prefix)) as url:
        yield Cli(url, topics, kafka_bootstrap, capsys)


def _jsonl_with_one_bad_line(tmp_path: Path) -> Path:
    path = tmp_path / "batch.jsonl"
    lines = [
        {"url": "https://example.com/a", "title": "Li Shangfu in Moscow", "body": "Talks."},
        {"title": "A bad date", "published_at": "yesterday-ish"},
        {"url": "https://example.com/b", "title": "Joint exercise", "body": "Naval drills."},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", "utf-8")
    return path


async def test_ingest_posts_the_seeds_and_a_jsonl_file_and_counts_every_outcome(
    cli: Cli, tmp_path: Path
) -> None:
    jsonl = _jsonl_with_one_bad_line(tmp_path)
    code, out, err = await cli.run("ingest", str(SEEDS), str(jsonl))
    assert code == 1, err  # one refused
    assert out.splitlines()[0] == ("4 accepted, 0 duplicate, 1 refused (5 articles from 3 files)")
    skipped = sorted(SEEDS.glob("*.yaml"))
    assert f"skipped {len(skipped)} files that are not articles: " in out
    assert str(SEEDS / "watchlist.yaml") in out
    [refusal] = [line for line in out.splitlines() if line.startswith(f"  {jsonl}")]
    assert refusal.startswith(f"  {jsonl}:2: published_at: ")
    assert await cli.records(cli.topics.articles.name) == 4


async def test_ingesting_the_same_files_again_reports_duplicates(cli: Cli, tmp_path: Path) -> None:
    jsonl = _jsonl_with_one_bad_line(tmp_path)
    await cli.run("ingest", str(SEEDS), str(jsonl))
    code, out, _ = await cli.run("ingest", "--json", str(SEEDS), str(jsonl))
    assert code == 1
    summary = json.loads(out)
    assert (summary["accepted"], summary["duplicate"], summary["refused"]) == (0, 4, 1)
    assert summary["refusals"][0]["where"] == f"{jsonl}:2"
    assert await cli.records(cli.topics.articles.name) == 4


async def test_ingest_exits_0_when_nothing_is_refused(cli: Cli) -> None:
    code, out, _ = await cli.run("ingest", str(SEEDS))
    assert code == 0
    assert out.startswith("2 accepted, 0 duplicate, 0 refused")


async def test_rules_apply_publishes_the_watchlist_and_rules_list_shows_it(cli: Cli) -> None:
    code, out, err = await cli.run("rules", "apply", str(SEEDS / "watchlist.yaml"))
    assert code == 0, err
    assert "3 created, 0 updated, 0 unchanged, 0 deleted" in out
    code, out, _ = await cli.run("rules", "list")
    assert code == 0
    ids = [line.split()[0] for line in out.splitlines()[1:]]
    assert ids == ["china-russia-defence", "li-shangfu", "military-drills"]
    code, out, _ = await cli.run("rules", "get", "li-shangfu")
    assert code == 0
    assert "李尚福" in out
    code, out, _ = await cli.run("rules", "apply", str(SEEDS / "watchlist.yaml"), "--json")
    assert json.loads(out)["unchanged"] == ["li-shangfu", "military-drills", "china-russia-defence"]
    assert await cli.records(cli.topics.rules.name) == 3


async def test_rules_apply_with_prune_deletes_the_rules_the_file_dropped(
    cli: Cli, tmp_path: Path
) -> None:
    await cli.run("rules", "apply", str(SEEDS / "watchlist.yaml"))
    smaller = tmp_path / "smaller.json"
    smaller.write_text(
        json.dumps({"rules": [{"id": "li-shangfu", "name": "Li", "any": ["Li Shangfu"]}]}),
        "utf-8",
    )
    code, out, err = await cli.run("rules", "apply", str(smaller), "--prune")
    assert code == 0, err
    assert "1 updated, 0 unchanged, 2 deleted" in out
    code, out, _ = await cli.run("rules", "delete", "li-shangfu")
    assert (code, out) == (0, "deleted rule li-shangfu\n")
    code, out, _ = await cli.run("rules", "list")
    assert (code, out) == (0, "no rules\n")


async def test_an_invalid_watchlist_exits_2_with_every_error_and_publishes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "tenant: demo\nrules:\n"
        "  - {id: good, name: Good, any: [china]}\n"
        "  - {id: broken, name: Broken, query: '(china OR'}\n"
        "  - {id: near, name: Near, query: 'a NEAR/3'}\n",
        "utf-8",
    )
    code, out, err = await cli.run("rules", "apply", str(bad))
    assert code == 2
    assert out == ""
    assert f"{bad}: rule broken: query at position 10: " in err
    assert f"{bad}: rule near: query at position" in err
    assert "no rule was published" in err
    assert await cli.records(cli.topics.rules.name) == 0


async def test_a_watchlist_of_another_tenant_is_refused_with_exit_2(cli: Cli) -> None:
    code, _, err = await cli.run("rules", "apply", str(SEEDS / "watchlist.yaml"), key=ACME_KEY)
    assert code == 2
    assert "your key is for 'acme'" in err


async def test_a_subscription_is_created_listed_rotated_and_deleted(cli: Cli) -> None:
    hook = f"{cli.url}/hook"
    code, out, err = await cli.run(
        "subscriptions",
        "create",
        "desk",
        "--url",
        hook,
        "--rule-ids",
        "li-shangfu,military-drills",
        "--min-severity",
        "high",
        "--every-alert",
    )
    assert code == 0, err
    [secret] = [line.split()[1] for line in out.splitlines() if line.startswith("secret: ")]
    assert secret.startswith("whsec_")
    assert "not shown again" in err

    code, out, _ = await cli.run("subscriptions", "list")
    [row] = out.splitlines()[1:]
    assert row.split()[0] == "desk"
    assert "rules li-shangfu,military-drills" in row
    assert "every alert" in row
    assert row.endswith(hook)
    assert secret not in out

    code, _, err = await cli.run("subscriptions", "create", "desk", "--url", hook)
    assert code == 2
    assert "already exists" in err

    code, out, _ = await cli.run("subscriptions", "rotate-secret", "desk", "--json")
    assert code == 0
    rotated = json.loads(out)
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != secret
    assert len(rotated["subscription"]["secrets"]) == 2

    code, out, _ = await cli.run("subscriptions", "get", "desk")
    assert code == 0
    assert "signs until" in out  # the old secret, during the overlap
    assert secret not in out
    assert rotated["secret"] not in out

    code, out, _ = await cli.run("subscriptions", "delete", "desk")
    assert (code, out) == (0, "deleted subscription desk\n")
    code, out, _ = await cli.run("subscriptions", "list")
    assert out == "no subscriptions\n"
    code, _, err = await cli.run("subscriptions", "get", "desk")
    assert code == 2
    assert "no subscription 'desk'" in err
    # Created, rotated, deleted (a tombstone); the refused second create published nothing.
    assert await cli.records(cli.topics.subscriptions.name) == 3


async def test_a_webhook_url_the_policy_refuses_exits_2_with_the_reason(cli: Cli) -> None:
    code, _, err = await cli.run("subscriptions", "create", "desk", "--url", "http://10.0.0.1/hook")
    assert code == 2
    assert "url refused" in err


async def test_an_unknown_key_is_refused_in_one_line_without_showing_the_key(cli: Cli) -> None:
    wrong = "na_wrong-key-for-cli-tests-000000000"
    code, out, err = await cli.run("rules", "list", key=wrong)
    assert code == 1
    assert err.count("\n") == 1
    assert "the API key was refused" in err
    assert wrong not in out + err


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_api_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code = main(["rules", "list", "--api-url", url, "--api-key", DEMO_KEY])
    _, err = capsys.readouterr()
    assert code == 1
    assert err == f"newsalert rules: cannot reach the ingest API at {url}: Connection refused\n"


async def test_the_installed_command_reads_the_key_from_the_environment(cli: Cli) -> None:
    env = {**os.environ, "NEWSALERT_API_URL": cli.url, "NEWSALERT_API_KEY": DEMO_KEY}
    proc = await asyncio.create_subprocess_exec(
        str(NEWSALERT),
        "ingest",
        str(SEEDS),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().startswith("2 accepted, 0 duplicate, 0 refused (2 articles from 2 files)")
    assert DEMO_KEY not in out.decode() + err.decode()


async def test_a_batch_over_the_servers_limit_is_split_until_it_fits(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    articles = tmp_path / "many.ndjson"
    articles.write_text(
        "".join(json.dumps({"title": f"article {i}", "body": "text"}) + "\n" for i in range(7)),
        "utf-8",
    )
    # The server takes 2 articles a request; the command sends 1,000 and halves on each 413.
    async with _serving(_settings(kafka_bootstrap, topic_prefix, max_batch=2)) as url:
        cli = Cli(url, topics, kafka_bootstrap, capsys)
        code, out, err = await cli.run("ingest", str(articles))
    assert code == 0, err
    assert out.startswith("7 accepted, 0 duplicate, 0 refused")
    assert await cli.records(topics.articles.name) == 7
