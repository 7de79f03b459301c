"""Read articles from files: JSONL, a JSON array, or a folder of plain-text articles.

Plain text is the seed format: the headline on the first line, the body after it. Records
without an `article_id` are treated as `ArticleIn` and get a derived id (rules.md section 6).

Two levels: `read_raw_records` yields each JSON record as written, with where it was (what
`newsalert ingest` posts, so the server validates and assigns ids); `read_articles` validates
them into `Article`s (what `newsalert match` runs the rules over).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from schemas.article import Article, ArticleIn
from services.ingest.identity import complete_article

TEXT_SUFFIXES = (".txt", ".text")
RECORD_SUFFIXES = (".json", ".jsonl", ".ndjson")
ARTICLE_SUFFIXES = (*TEXT_SUFFIXES, *RECORD_SUFFIXES)

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record that could not be read, and where it was.

    `nbytes` is how much of its file the record spans (for progress reports).
    """

    where: str
    reason: str
    nbytes: int = 0


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One JSON record as written in its file (parsed, not validated), and where it was.

    `where` is `file:line` for JSONL and `file[index]` for a JSON array; `nbytes` is how much
    of the file the record spans (for progress reports).
    """

    where: str
    data: Any
    nbytes: int = 0


def is_text_file(path: Path) -> bool:
    """A plain-text article (headline on the first line), by its suffix."""
    return path.suffix.lower() in TEXT_SUFFIXES


def is_article_file(path: Path) -> bool:
    """A file of articles: plain text, JSONL/NDJSON or JSON, by its suffix."""
    return path.suffix.lower() in ARTICLE_SUFFIXES


def folder_files(folder: Path, *, recursive: bool) -> Iterator[Path]:
    """The regular files of `folder` in name order, hidden ones left out.

    With `recursive`, sub-folders are read in place (depth first); symbolic links to
    folders are not followed, so a link loop cannot make the walk endless.
    """
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if recursive and not child.is_symlink():
                yield from folder_files(child, recursive=True)
        elif child.is_file():
            yield child


def _text_article(path: Path, now: datetime) -> Article:
    text = path.read_text("utf-8")
    title, _, body = text.partition("\n")
    return complete_article(ArticleIn(title=title.strip(), body=body), now)


def read_articles(path: str) -> Iterator[Article | BadRecord]:
    """Every article in `path` (`-` is standard input, read as JSONL), in order.

    A record that cannot be read is yielded as a `BadRecord`; a path that cannot be opened
    raises `OSError`.
    """
    now = datetime.now(UTC)
    target = Path(path)
    if path != "-" and target.is_dir():
        # A folder may hold other files (the seeds hold a watchlist): read articles only.
        for child in folder_files(target, recursive=False):
            if is_article_file(child):
                yield from read_articles(str(child))
        return
    if path != "-" and is_text_file(target):
        try:
            yield _text_article(target, now)
        except (UnicodeDecodeError, ValidationError) as exc:
            yield BadRecord(str(target), str(exc))
        return
    for item in read_raw_records(path):
        yield item if isinstance(item, BadRecord) else _validated(item.data, item.where, now)


def read_raw_records(path: str) -> Iterator[RawRecord | BadRecord]:
    """Every JSON record of a JSONL file or a JSON array file (`-`: JSONL on stdin).

    A JSON array is told from JSONL by its first character. JSONL is read line by line (a
    line break is `\\n`), so a big file is never held whole; a line that is not UTF-8 or not
    JSON is a `BadRecord`, and the lines after it are still read.

    Raises:
        OSError: the file cannot be opened or read.
    """
    if path == "-":
        yield from _jsonl(_stdin_lines(), "<stdin>")
        return
    with Path(path).open("rb") as stream:
        if stream.read(len(_BOM)) != _BOM:
            stream.seek(0)
        start = stream.tell()
        first = _first_significant_byte(stream)
        stream.seek(start)
        if first == b"[":
            yield from _json_array(stream, path)
        else:
            yield from _jsonl(stream, path)


def _stdin_lines() -> Iterable[bytes]:
    binary: BinaryIO | None = getattr(sys.stdin, "buffer", None)
    if binary is not None:
        return binary
    return (line.encode("utf-8", errors="surrogateescape") for line in sys.stdin)


def _first_significant_byte(stream: BinaryIO) -> bytes:
    while chunk := stream.read(64 * 1024):
        stripped = chunk.lstrip()
        if stripped:
            return stripped[:1]
    return b""


def _json_array(stream: BinaryIO, name: str) -> Iterator[RawRecord | BadRecord]:
    raw = stream.read()
    try:
        items = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        yield BadRecord(name, f"not UTF-8 text: invalid byte at offset {exc.start}", len(raw))
        return
    except (ValueError, RecursionError) as exc:
        yield BadRecord(name, f"not valid JSON: {_json_problem(exc)}", len(raw))
        return
    if not items:
        return
    share, rest = divmod(len(raw), len(items))
    for index, item in enumerate(items):
        yield RawRecord(f"{name}[{index}]", item, share + (rest if index == 0 else 0))


def _jsonl(lines: Iterable[bytes], name: str) -> Iterator[RawRecord | BadRecord]:
    carried = 0  # bytes of blank lines, counted with the next record
    for number, line in enumerate(lines, start=1):
        carried += len(line)
        if not line.strip():
            continue
        where, nbytes, carried = f"{name}:{number}", carried, 0
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"not UTF-8 text: invalid byte at column {exc.start + 1}"
            yield BadRecord(where, reason, nbytes)
            continue
        try:
            yield RawRecord(where, json.loads(text), nbytes)
        except (ValueError, RecursionError) as exc:
            yield BadRecord(where, f"not valid JSON: {_json_problem(exc)}", nbytes)


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _validated(raw: Any, where: str, now: datetime) -> Article | BadRecord:
    try:
        if isinstance(raw, dict) and "article_id" in raw:
            return Article.model_validate(raw)
        return complete_article(ArticleIn.model_validate(raw), now)
    except ValidationError as exc:
        return BadRecord(
            where,
            "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ),
        )
