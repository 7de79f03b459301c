"""`newsalert match`: the offline dry run over a watchlist and articles, run in-process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from schemas.alert import MatchRecord
from services.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
WATCHLIST = SEEDS / "watchlist.yaml"
SEED_RULES = {"li-shangfu", "military-drills", "china-russia-defence"}


def _records(text: str) -> list[MatchRecord]:
    return [MatchRecord.model_validate_json(line) for line in text.splitlines() if line.strip()]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["match", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_seeds_print_one_match_record_per_rule_and_article(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(capsys, "--rules", str(WATCHLIST), "--input", str(SEEDS))
    assert code == 0, err
    records = _records(out)
    assert len(records) == 6
    assert {r.rule_id for r in records} == SEED_RULES
    assert len({r.article_id for r in records}) == 2
    assert len({r.alert_id for r in records}) == 6
    assert all(r.tenant == "demo" for r in records)
    li = [r for r in records if r.rule_id == "li-shangfu"]
    assert all(e.text == "Li Shangfu" for r in li for e in r.evidence)
    assert all(r.severity == "high" and r.tags == ["people", "china"] for r in li)


def test_the_dry_run_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    _, first, _ = _run(capsys, "--rules", str(WATCHLIST), "--input", str(SEEDS))
    _, second, _ = _run(capsys, "--rules", str(WATCHLIST), "--input", str(SEEDS))
    assert first == second


def test_summary_prints_counts_per_rule_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--rules", str(WATCHLIST), "--input", str(SEEDS), "--summary")
    assert code == 0
    assert len(_records(out)) == 6
    assert "2 articles, 0 skipped, 6 matches" in err
    for rule_id in SEED_RULES:
        [line] = [line for line in err.splitlines() if line.split()[:1] == [rule_id]]
        assert line.split()[-1] == "2"


def test_output_writes_the_records_to_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "matches.jsonl"
    code, out, _ = _run(
        capsys, "--rules", str(WATCHLIST), "--input", str(SEEDS), "--output", str(target)
    )
    assert code == 0
    assert out == ""
    assert len(_records(target.read_text("utf-8"))) == 6


def test_an_invalid_watchlist_exits_2_with_every_error_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text(
        "rules:\n"
        "  - {id: good, name: Good, any: [china]}\n"
        "  - {id: bad-query, name: Bad, query: '(china OR'}\n"
        "  - {id: bad-severity, name: Bad, any: [x], severity: urgent}\n"
        "  - {id: only-not, name: Bad, query: 'NOT china'}\n",
        "utf-8",
    )
    code, out, err = _run(capsys, "--rules", str(rules), "--input", str(SEEDS))
    assert code == 2
    assert out == ""
    for rule_id in ("bad-query", "bad-severity", "only-not"):
        assert rule_id in err
    assert "position 10" in err
    assert "default/good" not in err


def test_an_unreadable_watchlist_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "broken.yaml"
    rules.write_text("rules: [unclosed\n", "utf-8")
    code, _, err = _run(capsys, "--rules", str(rules), "--input", str(SEEDS))
    assert code == 2
    assert str(rules) in err


def test_a_missing_watchlist_file_exits_2_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.yaml"
    code, out, err = _run(capsys, "--rules", str(missing), "--input", str(SEEDS))
    assert code == 2
    assert out == ""
    assert str(missing) in err


def test_a_missing_input_file_is_bad_input_not_a_crash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.jsonl"
    code, _, err = _run(capsys, "--rules", str(WATCHLIST), "--input", str(missing))
    assert code == 2
    assert str(missing) in err


def _jsonl(*items: object) -> str:
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items)


def test_jsonl_with_a_bad_line_reports_it_and_continues(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    articles = tmp_path / "articles.jsonl"
    articles.write_text(
        _jsonl(
            {"id": "first", "title": "Li Shangfu to visit Russia"},
            "{not json",
            {"id": "bad id with spaces", "title": "Li Shangfu"},
            "",
            {"url": "https://example.com/x?utm_source=y", "body": "General Li Shangfu"},
        ),
        "utf-8",
    )
    code, out, err = _run(capsys, "--rules", str(WATCHLIST), "--input", str(articles), "--summary")
    assert code == 0
    records = [r for r in _records(out) if r.rule_id == "li-shangfu"]
    assert len(records) == 2
    assert records[0].article_id == "first"
    assert records[1].article_id.startswith("url-")
    assert f"{articles}:2" in err
    assert f"{articles}:3" in err
    assert "2 articles, 2 skipped" in err


def test_a_json_array_of_articles_is_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    articles = tmp_path / "articles.json"
    articles.write_text(
        json.dumps([{"id": "a1", "title": "Li Shangfu"}, {"id": "a2", "title": "Nothing"}]),
        "utf-8",
    )
    code, out, _ = _run(capsys, "--rules", str(WATCHLIST), "--input", str(articles))
    assert code == 0
    assert [(r.article_id, r.rule_id) for r in _records(out)] == [("a1", "li-shangfu")]


def test_stdin_is_read_as_jsonl(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "sys.stdin",
        io.StringIO(_jsonl({"id": "s1", "title": "Li Shangfu", "body": "joint exercises"})),
    )
    code, out, err = _run(capsys, "--rules", str(WATCHLIST), "--input", "-")
    assert code == 0, err
    records = _records(out)
    assert {r.rule_id for r in records} == {"li-shangfu", "military-drills"}
    assert {r.article_id for r in records} == {"s1"}


def test_tenant_option_applies_when_the_watchlist_names_none(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"id": "c", "name": "C", "any": ["china"]}]}), "utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO(_jsonl({"id": "a", "title": "China"})))
    code, out, _ = _run(capsys, "--rules", str(rules), "--input", "-", "--tenant", "acme")
    assert code == 0
    [record] = _records(out)
    assert record.tenant == "acme"
