"""`newsalert ingest` without a server: files found, batches cut, answers counted, summaries."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from schemas.api import ArticleStatus
from services.cli.api_client import Reply
from services.cli.ingest import (
    Batcher,
    Ingester,
    Line,
    Progress,
    Refusal,
    Summary,
    batches,
    find_sources,
    ndjson_line,
    render_progress,
)

SEEDS = Path(__file__).resolve().parents[3] / "seeds"


def _line(n: int, size: int = 10) -> Line:
    return Line(n, f"f.jsonl:{n}", b"x" * size, size)


def test_batches_hold_at_most_max_lines() -> None:
    cut = list(batches((_line(n) for n in range(1, 2502)), max_lines=1000))
    assert [len(b) for b in cut] == [1000, 1000, 501]
    assert [line.order for b in cut for line in b] == list(range(1, 2502))


def test_batches_hold_at_most_max_bytes_counting_line_breaks() -> None:
    cut = list(batches((_line(n, 99) for n in range(1, 8)), max_lines=1000, max_bytes=300))
    assert [len(b) for b in cut] == [3, 3, 1]  # 3 x (99 + 1) = 300


def test_a_line_larger_than_max_bytes_goes_alone() -> None:
    lines = [_line(1, 10), _line(2, 500), _line(3, 10)]
    assert [[x.order for x in b] for b in batches(lines, max_bytes=100)] == [[1], [2], [3]]


def test_the_batcher_flushes_nothing_when_empty() -> None:
    assert Batcher().flush() == []
    assert list(batches([])) == []


def test_an_ndjson_line_escapes_every_character_that_could_break_it() -> None:
    record = {"title": "a\nb\u2028c\x85d\x1ce\u00e9", "n": 1}
    line = ndjson_line(record)
    assert line.isascii()
    assert len(line.decode().splitlines()) == 1
    assert json.loads(line) == record


def test_sources_walk_folders_recursively_and_skip_other_files(tmp_path: Path) -> None:
    (tmp_path / "deep" / "er").mkdir(parents=True)
    for name in ("a.jsonl", "deep/b.TXT", "deep/er/c.ndjson", "deep/notes.md"):
        (tmp_path / name).write_text("{}\n", "utf-8")
    found = find_sources([str(tmp_path), str(tmp_path / "a.jsonl")])
    assert found.problems == []
    assert [(Path(s.path).name, s.text) for s in found.files] == [
        ("a.jsonl", False),
        ("b.TXT", True),
        ("c.ndjson", False),
    ]
    assert found.skipped == [str(tmp_path / "deep" / "notes.md")]
    assert found.total_bytes == 9


def test_the_seeds_folder_is_two_text_articles_and_skipped_yaml_files() -> None:
    found = find_sources([str(SEEDS)])
    assert [Path(s.path).suffix for s in found.files] == [".txt", ".txt"]
    assert found.skipped == [str(p) for p in sorted(SEEDS.glob("*.yaml"))]
    assert str(SEEDS / "watchlist.yaml") in found.skipped


def test_missing_and_non_article_paths_are_problems(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("rules: []", "utf-8")
    found = find_sources([str(tmp_path / "missing"), str(tmp_path / "rules.yaml"), "-"])
    assert found.problems == [
        f"{tmp_path / 'missing'}: no such file or folder",
        f"{tmp_path / 'rules.yaml'}: not an article file (use .txt, .text, .json, .jsonl, .ndjson)",
    ]
    assert [s.path for s in found.files] == ["-"]
    assert found.total_bytes is None


def _summary() -> Summary:
    summary = Summary(files=2, skipped=["seeds/watchlist.yaml"])
    for n in range(3):
        summary.count(ArticleStatus.ACCEPTED, n, f"a.jsonl:{n}")
    summary.count(ArticleStatus.DUPLICATE, 3, "a.jsonl:4")
    for n in (9, 7, 8, 6, 5, 10):  # answered out of file order
        summary.refuse(Refusal(n, f"b.jsonl:{n}", f"reason {n}"))
    return summary


def test_the_summary_counts_and_lists_the_first_refusals_in_file_order() -> None:
    assert _summary().format(limit=3).splitlines() == [
        "3 accepted, 1 duplicate, 6 refused (10 articles from 2 files)",
        "skipped 1 file that is not an article: seeds/watchlist.yaml",
        "refused:",
        "  b.jsonl:5: reason 5",
        "  b.jsonl:6: reason 6",
        "  b.jsonl:7: reason 7",
        "  ... and 3 more (--json lists them all)",
    ]


def test_an_interrupted_run_says_so() -> None:
    assert "stopped before the end" in Summary().format(complete=False)
    assert Summary().format() == "0 accepted, 0 duplicate, 0 refused (0 articles from 0 files)"


def test_the_json_summary_lists_every_refusal() -> None:
    data = _summary().to_json()
    assert (data["accepted"], data["duplicate"], data["refused"]) == (3, 1, 6)
    assert [r["where"] for r in data["refusals"]] == [f"b.jsonl:{n}" for n in range(5, 11)]
    assert data["complete"] is True


def test_the_progress_line_has_a_bar_when_the_total_is_known() -> None:
    text = render_progress(50, 200, _summary(), width=8)
    assert text == "[##......]  25%  10 articles: 3 accepted, 1 duplicate, 6 refused"
    assert render_progress(50, None, Summary()).startswith("0 articles")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_redraws_in_place_on_a_terminal() -> None:
    stream, clock = io.StringIO(), _Clock()
    progress = Progress(stream, 100, tty=True, clock=clock)
    progress.advance(10, Summary())
    assert stream.getvalue() == ""  # not yet: at most 10 redraws a second
    clock.now = 0.2
    progress.advance(10, Summary())
    progress.close(Summary())
    drawn = stream.getvalue()
    assert drawn.startswith("\r[")
    assert drawn.count("\r") == 2
    assert " 20%" in drawn
    assert drawn.endswith(" 100%  0 articles: 0 accepted, 0 duplicate, 0 refused\x1b[K\n")


def test_progress_prints_a_plain_line_every_few_seconds_otherwise() -> None:
    stream, clock = io.StringIO(), _Clock()
    progress = Progress(stream, 100, tty=False, clock=clock)
    for step in range(1, 12):
        clock.now = step
        progress.advance(5, Summary())
    progress.close(Summary())
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # at 5 s and 10 s
    assert all(line.startswith("ingest: [") and "\r" not in line for line in lines)


def test_quiet_progress_prints_nothing() -> None:
    stream, clock = io.StringIO(), _Clock()
    progress = Progress(stream, 100, tty=True, enabled=False, clock=clock)
    clock.now = 60
    progress.advance(100, Summary())
    progress.close(Summary())
    assert stream.getvalue() == ""


class FakeApi:
    """Answers like the ingest API: NDJSON lines with a `bad` field are refused, titles seen
    before are duplicates, batches over `max_batch` lines are 413."""

    url = "http://fake"

    def __init__(self, max_batch: int = 1000) -> None:
        self.max_batch = max_batch
        self.seen: set[str] = set()
        self.requests: list[tuple[str, int]] = []

    def _receipt(self, title: str, line: int | None = None) -> dict[str, Any]:
        status = "duplicate" if title in self.seen else "accepted"
        self.seen.add(title)
        return {"line": line, "article_id": title, "status": status, "errors": []}

    def send(self, method: str, path: str, *, body: bytes, **_: Any) -> Reply:
        if path == "/v1/articles/text":
            self.requests.append((path, 1))
            title = body.decode().partition("\n")[0].strip()
            if not title:
                return Reply(422, {"detail": "the text article is empty"})
            return Reply(202, self._receipt(title))
        lines = body.decode().splitlines()
        self.requests.append((path, len(lines)))
        if len(lines) > self.max_batch:
            return Reply(413, {"detail": f"a batch holds at most {self.max_batch} articles"})
        items = []
        for number, text in enumerate(lines, start=1):
            record = json.loads(text)
            if "bad" in record:
                error = {"loc": ["bad"], "msg": "Extra inputs are not permitted"}
                items.append({"line": number, "status": "refused", "errors": [error]})
            else:
                items.append(self._receipt(record["title"], number))
        counts = {s: sum(i["status"] == s for i in items) for s in ("accepted", "duplicate")}
        refused = len(items) - sum(counts.values())
        return Reply(
            207 if refused else 202,
            {
                "accepted": counts["accepted"],
                "duplicates": counts["duplicate"],
                "refused": refused,
                "items": items,
            },
        )


def _ingest(api: FakeApi, paths: list[str], **options: Any) -> Summary:
    found = find_sources(paths)
    assert not found.problems
    ingester = Ingester(api, Progress(io.StringIO(), None, tty=False), **options)  # type: ignore[arg-type]
    ingester.run(found.files)
    return ingester.summary


def _write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), "utf-8"
    )
    return path


def test_refusals_are_reported_by_file_and_line_across_batches(tmp_path: Path) -> None:
    first = _write_jsonl(tmp_path / "1.jsonl", [{"title": "a"}, {"title": "b", "bad": 1}])
    second = _write_jsonl(
        tmp_path / "2.jsonl", [{"title": "c"}, "{oops", {"title": "a"}, {"bad": 2, "title": "d"}]
    )
    api = FakeApi()
    summary = _ingest(api, [str(first), str(second)], max_lines=2)
    assert (summary.accepted, summary.duplicate, summary.refused) == (2, 1, 3)
    assert [
        (r.where, r.reason.split(":")[0]) for r in sorted(summary.refusals, key=lambda r: r.order)
    ] == [
        (f"{first}:2", "bad"),
        (f"{second}:2", "not valid JSON"),
        (f"{second}:4", "bad"),
    ]
    assert api.requests == [("/v1/articles", 2), ("/v1/articles", 2), ("/v1/articles", 1)]


def test_a_batch_the_server_finds_too_large_is_halved_until_it_fits(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "a.jsonl", [{"title": str(n)} for n in range(10)])
    api = FakeApi(max_batch=3)
    summary = _ingest(api, [str(path)])
    assert summary.accepted == 10
    sent = [n for _, n in api.requests]
    assert sent[0] == 10
    assert sum(n for n in sent if n <= 3) == 10


def test_text_files_are_posted_one_by_one_and_an_empty_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Headline\nBody", "utf-8")
    (tmp_path / "b.txt").write_text("\n\n", "utf-8")
    api = FakeApi()
    summary = _ingest(api, [str(tmp_path)])
    assert (summary.accepted, summary.refused) == (1, 1)
    assert summary.refusals == [Refusal(2, str(tmp_path / "b.txt"), "the text article is empty")]
    assert api.requests == [("/v1/articles/text", 1), ("/v1/articles/text", 1)]


@pytest.mark.parametrize("status", [202, 422])
def test_an_answer_that_is_not_a_receipt_stops_the_run(tmp_path: Path, status: int) -> None:
    from services.cli.api_client import ApiError

    class Broken(FakeApi):
        def send(self, method: str, path: str, *, body: bytes, **_: Any) -> Reply:
            return Reply(status, {"detail": "something else"})

    path = _write_jsonl(tmp_path / "a.jsonl", [{"title": "a"}])
    with pytest.raises(ApiError):
        _ingest(Broken(), [str(path)])
