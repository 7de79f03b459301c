"""Raw records of article files: where each one is, what a bad one says, byte counts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from services.cli.article_files import BadRecord, RawRecord, folder_files, read_raw_records


def test_jsonl_records_are_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"title": "one"}\n\n{not json\n\xff\xfe\n{"title": "four"}\n')
    items = list(read_raw_records(str(path)))
    assert [type(i) for i in items] == [RawRecord, BadRecord, BadRecord, RawRecord]
    assert [i.where for i in items] == [f"{path}:1", f"{path}:3", f"{path}:4", f"{path}:5"]
    assert isinstance(items[1], BadRecord)
    assert items[1].reason.startswith("not valid JSON")
    assert isinstance(items[2], BadRecord)
    assert items[2].reason.startswith("not UTF-8 text")
    assert items[3] == RawRecord(f"{path}:5", {"title": "four"}, len(b'{"title": "four"}\n'))


def test_the_bytes_of_every_line_are_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"title": "one"}\r\n\n  \n{"title": "two"}')
    items = list(read_raw_records(str(path)))
    assert [i.where for i in items] == [f"{path}:1", f"{path}:4"]
    assert sum(i.nbytes for i in items) == path.stat().st_size - 3  # the BOM is not a line


def test_a_line_separator_inside_a_string_does_not_split_the_record(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"title": "a\u2028b\x85c"}, ensure_ascii=False) + "\n", "utf-8")
    [item] = list(read_raw_records(str(path)))
    assert isinstance(item, RawRecord)
    assert item.data == {"title": "a\u2028b\x85c"}


def test_a_json_array_is_read_item_by_item(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('  \n[{"title": "one"}, {"title": "two"}, 3]', "utf-8")
    items = list(read_raw_records(str(path)))
    assert [i.where for i in items] == [f"{path}[0]", f"{path}[1]", f"{path}[2]"]
    assert [i.data for i in items if isinstance(i, RawRecord)] == [
        {"title": "one"},
        {"title": "two"},
        3,
    ]
    assert sum(i.nbytes for i in items) == path.stat().st_size


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"[{", "not valid JSON"), (b"[" * 100_000, "not valid JSON"), (b'["\xff"]', "not UTF-8")],
    ids=["truncated", "nested-too-deep", "not-utf8"],
)
def test_an_unreadable_json_array_is_one_bad_record(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(content)
    [item] = list(read_raw_records(str(path)))
    assert isinstance(item, BadRecord)
    assert item.where == str(path)
    assert item.reason.startswith(reason)


def test_stdin_is_read_as_jsonl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"title": "one"}\n'))
    assert [i.where for i in read_raw_records("-")] == ["<stdin>:1"]


def test_folders_are_walked_in_name_order_without_hidden_files(tmp_path: Path) -> None:
    for name in ("b.txt", "a/z.jsonl", "a/y/x.json", ".hidden/c.txt", ".d.txt", "c.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", "utf-8")
    found = [p.relative_to(tmp_path).as_posix() for p in folder_files(tmp_path, recursive=True)]
    assert found == ["a/y/x.json", "a/z.jsonl", "b.txt", "c.yaml"]
    flat = [p.name for p in folder_files(tmp_path, recursive=False)]
    assert flat == ["b.txt", "c.yaml"]
