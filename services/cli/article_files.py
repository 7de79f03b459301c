"""Read articles from files: JSONL, a JSON array, or a folder of plain-text articles.

Plain text is the seed format: the headline on the first line, the body after it. Records
without an `article_id` are treated as `ArticleIn` and get a derived id (rules.md section 6).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas.article import Article, ArticleIn
from services.ingest.identity import complete_article

TEXT_SUFFIXES = (".txt", ".text")
ARTICLE_SUFFIXES = (*TEXT_SUFFIXES, ".json", ".jsonl", ".ndjson")


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record that could not be read, and where it was."""

    where: str
    reason: str


def _from_mapping(raw: Any, now: datetime) -> Article:
    if isinstance(raw, dict) and "article_id" in raw:
        return Article.model_validate(raw)
    return complete_article(ArticleIn.model_validate(raw), now)


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
    if path == "-":
        yield from _read_jsonl(sys.stdin.read(), "<stdin>", now)
        return
    target = Path(path)
    if target.is_dir():
        # A folder may hold other files (the seeds hold a watchlist): read articles only.
        for child in sorted(target.iterdir()):
            if child.is_file() and child.suffix in ARTICLE_SUFFIXES:
                yield from read_articles(str(child))
        return
    if target.suffix in TEXT_SUFFIXES:
        try:
            yield _text_article(target, now)
        except (UnicodeDecodeError, ValidationError) as exc:
            yield BadRecord(str(target), str(exc))
        return
    try:
        text = target.read_text("utf-8")
    except UnicodeDecodeError as exc:
        yield BadRecord(str(target), f"not UTF-8 text: {exc}")
        return
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            yield BadRecord(str(target), f"not valid JSON: {exc}")
            return
        for index, raw in enumerate(items):
            yield _validated(raw, f"{target}[{index}]", now)
        return
    yield from _read_jsonl(text, str(target), now)


def _read_jsonl(text: str, name: str, now: datetime) -> Iterator[Article | BadRecord]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as exc:
            yield BadRecord(f"{name}:{number}", f"not valid JSON: {exc}")
            continue
        yield _validated(raw, f"{name}:{number}", now)


def _validated(raw: Any, where: str, now: datetime) -> Article | BadRecord:
    try:
        return _from_mapping(raw, now)
    except ValidationError as exc:
        return BadRecord(
            where,
            "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ),
        )
