"""`newsalert ingest PATH...`: post article files to the ingest API, with progress and a summary.

JSONL, NDJSON and JSON-array records go as NDJSON batches to `POST /v1/articles` (at most
1,000 lines and about 1 MB a request; a batch the server finds too large is split in two and
sent again), each record as written: the server validates it and assigns its id. Plain-text
files go one by one to `POST /v1/articles/text`, so the server's headline, byline, date and
boilerplate parsing applies. Folders are read recursively; other files in them (a watchlist,
say) are skipped and counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from schemas.api import ArticleReceipt, ArticleStatus, BatchReceipt
from services.cli.api_client import (
    ApiClient,
    ApiError,
    ApiUnreachable,
    RequestRefused,
    ServerFailed,
    describe_detail,
)
from services.cli.api_options import api_options, fail, report, run_with_client
from services.cli.article_files import (
    ARTICLE_SUFFIXES,
    BadRecord,
    folder_files,
    is_article_file,
    is_text_file,
    read_raw_records,
)

PROG = "newsalert ingest"
MAX_LINES = 1000  # the API's default NEWSALERT_MAX_BATCH
MAX_BATCH_BYTES = 1_000_000  # under the API's default 1 MiB NEWSALERT_MAX_BODY_BYTES
REFUSALS_SHOWN = 5
NDJSON = "application/x-ndjson"
# Answers that refuse one article (a text file, or the single line of a batch) rather than
# the whole run: not UTF-8, too large, invalid.
_ARTICLE_REFUSALS = frozenset({400, 413, 422})


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `ingest` subcommand."""
    parser = subparsers.add_parser(
        "ingest",
        parents=[api_options()],
        help="post article files to the ingest API",
        description="Post articles to the ingest API: JSONL/NDJSON and JSON-array files as "
        "batches, plain-text files (headline on the first line) one by one, folders "
        "recursively (other files are skipped), - for JSONL on stdin. Shows progress on "
        "stderr and ends with a summary of accepted, duplicate and refused articles. "
        "Exit status: 0 when no article was refused, 1 when some were (or the API could not "
        "be reached or refused the key), 2 when a path cannot be read.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file, folder, or - for stdin")
    parser.add_argument(
        "--language", metavar="CODE", help="ISO 639 language of the plain-text articles"
    )
    parser.add_argument(
        "--batch-size",
        type=_batch_size,
        default=MAX_LINES,
        metavar="N",
        help=f"articles per request, 1 to {MAX_LINES} (default {MAX_LINES})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(handler=run)


def _batch_size(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_LINES:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_LINES}")
    return number


# -- which files ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """One file to post: its path as given (or found), its kind and size (None: stdin)."""

    path: str
    text: bool
    size: int | None


@dataclass
class Sources:
    """The files the paths name, the files skipped in folders, and paths that cannot be read."""

    files: list[Source] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int | None:
        """Bytes to read in all, None when stdin is among them."""
        sizes = [s.size for s in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)


def find_sources(paths: Sequence[str]) -> Sources:
    """The article files of `paths`, in order; each file once even when named twice."""
    found = Sources()
    seen: set[Path | str] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        if not os.access(path, os.R_OK):
            found.problems.append(f"{path}: cannot read: permission denied")
            return
        found.files.append(Source(str(path), is_text_file(path), path.stat().st_size))

    for given in paths:
        if given == "-":
            if "-" not in seen:
                seen.add("-")
                found.files.append(Source("-", False, None))
            continue
        path = Path(given)
        try:
            if path.is_dir():
                for child in folder_files(path, recursive=True):
                    if is_article_file(child):
                        add(child)
                    else:
                        found.skipped.append(str(child))
            elif path.is_file():
                if is_article_file(path):
                    add(path)
                else:
                    found.problems.append(
                        f"{given}: not an article file (use {', '.join(ARTICLE_SUFFIXES)})"
                    )
            elif path.exists():
                found.problems.append(f"{given}: not a regular file or folder")
            else:
                found.problems.append(f"{given}: no such file or folder")
        except OSError as exc:
            found.problems.append(f"{given}: cannot read: {exc.strerror or exc}")
    return found


# -- batches --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One record of an NDJSON batch: its place in the run, where it came from, its JSON."""

    order: int
    where: str
    payload: bytes
    nbytes: int = 0


class Batcher:
    """Collects lines into batches of at most `max_lines` lines and `max_bytes` bytes.

    A line larger than `max_bytes` on its own makes a batch of one (the server decides).
    """

    def __init__(self, max_lines: int = MAX_LINES, max_bytes: int = MAX_BATCH_BYTES) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._lines: list[Line] = []
        self._bytes = 0

    def add(self, line: Line) -> list[Line] | None:
        """Add `line`; the batch it did not fit in, now complete, if any."""
        cost = len(line.payload) + 1  # and its line break
        full: list[Line] | None = None
        if self._lines and (
            len(self._lines) >= self.max_lines or self._bytes + cost > self.max_bytes
        ):
            full = self.flush()
        self._lines.append(line)
        self._bytes += cost
        return full

    def flush(self) -> list[Line]:
        """The lines collected so far (perhaps none), and start over."""
        lines, self._lines, self._bytes = self._lines, [], 0
        return lines


def batches(
    lines: Iterable[Line], max_lines: int = MAX_LINES, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[list[Line]]:
    """`lines` cut into batches, in order."""
    batcher = Batcher(max_lines, max_bytes)
    for line in lines:
        if (full := batcher.add(line)) is not None:
            yield full
    if rest := batcher.flush():
        yield rest


def ndjson_line(record: Any) -> bytes:
    """One record as one NDJSON line: compact, ASCII, so no character can break the line."""
    return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii")


# -- the summary ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused article: its place in the run, where it came from, why."""

    order: int
    where: str
    reason: str


@dataclass
class Summary:
    """What happened to the articles so far."""

    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    files: int = 0
    skipped: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def articles(self) -> int:
        """Articles answered so far."""
        return self.accepted + self.duplicate + self.refused

    def count(self, status: ArticleStatus, order: int, where: str, reason: str = "") -> None:
        """Count one answered article."""
        if status == ArticleStatus.ACCEPTED:
            self.accepted += 1
        elif status == ArticleStatus.DUPLICATE:
            self.duplicate += 1
        else:
            self.refuse(Refusal(order, where, reason or "refused"))

    def refuse(self, refusal: Refusal) -> None:
        """Count one refused article and keep why."""
        self.refused += 1
        self.refusals.append(refusal)

    def format(self, limit: int = REFUSALS_SHOWN, complete: bool = True) -> str:
        """The summary for people: counts, then the first `limit` refusals, file order."""
        files = f"{self.files} file{'s' if self.files != 1 else ''}"
        lines = [
            f"{self.accepted} accepted, {self.duplicate} duplicate, {self.refused} refused "
            f"({self.articles} article{'s' if self.articles != 1 else ''} from {files}"
            + ("" if complete else "; stopped before the end")
            + ")"
        ]
        if self.skipped:
            shown = ", ".join(self.skipped[:3])
            more = f" and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            one = len(self.skipped) == 1
            kind = "file that is not an article" if one else "files that are not articles"
            lines.append(f"skipped {len(self.skipped)} {kind}: {shown}{more}")
        if self.refusals:
            lines.append("refused:")
            ordered = sorted(self.refusals, key=lambda r: r.order)
            lines.extend(f"  {r.where}: {r.reason}" for r in ordered[:limit])
            if len(ordered) > limit:
                lines.append(f"  ... and {len(ordered) - limit} more (--json lists them all)")
        return "\n".join(lines)

    def to_json(self, complete: bool = True) -> dict[str, Any]:
        """The summary for programs: every refusal included."""
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "refused": self.refused,
            "articles": self.articles,
            "files": self.files,
            "complete": complete,
            "skipped": self.skipped,
            "refusals": [
                {"where": r.where, "reason": r.reason}
                for r in sorted(self.refusals, key=lambda r: r.order)
            ],
        }


def refusal_reason(errors: Any) -> str:
    """An API refusal (a receipt's `errors`, or a 4xx `detail`) on one line."""
    return "; ".join(describe_detail(errors))


# -- progress -------------------------------------------------------------------------------


def render_progress(done: int, total: int | None, summary: Summary, width: int = 30) -> str:
    """`[######......]  42%  1,234 articles: ...`; without a bar when the total is unknown."""
    counts = (
        f"{summary.articles:,} articles: {summary.accepted:,} accepted, "
        f"{summary.duplicate:,} duplicate, {summary.refused:,} refused"
    )
    if not total:
        return counts
    fraction = min(max(done / total, 0.0), 1.0)
    filled = int(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {int(fraction * 100):3d}%  {counts}"


class Progress:
    """Progress on stderr: a bar redrawn in place on a terminal, a line every few seconds
    otherwise, nothing when disabled."""

    def __init__(
        self,
        stream: TextIO,
        total_bytes: int | None,
        *,
        tty: bool,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float | None = None,
    ) -> None:
        self.stream = stream
        self.total = total_bytes
        self.tty = tty
        self.enabled = enabled
        self.clock = clock
        self.interval_s = interval_s if interval_s is not None else (0.1 if tty else 5.0)
        self.done = 0
        self._last = clock()

    def advance(self, nbytes: int, summary: Summary) -> None:
        """`nbytes` more of the input answered; show it if it is time."""
        self.done += nbytes
        now = self.clock()
        if self.enabled and now - self._last >= self.interval_s:
            self._last = now
            self._show(summary)

    def close(self, summary: Summary, *, complete: bool = True) -> None:
        """The last state on a terminal (the bar full when the run completed), and a newline."""
        if not (self.enabled and self.tty):
            return
        if complete and self.total:
            self.done = self.total
        self._show(summary)
        self.stream.write("\n")
        self.stream.flush()

    def _show(self, summary: Summary) -> None:
        text = render_progress(self.done, self.total, summary)
        if self.tty:
            self.stream.write(f"\r{text}\x1b[K")
        else:
            self.stream.write(f"ingest: {text}\n")
        self.stream.flush()


# -- posting --------------------------------------------------------------------------------


class Ingester:
    """Posts the sources' articles and counts what the API answered."""

    def __init__(
        self,
        client: ApiClient,
        progress: Progress,
        *,
        language: str | None = None,
        max_lines: int = MAX_LINES,
        max_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.client = client
        self.progress = progress
        self.language = language
        self.summary = Summary()
        self._batcher = Batcher(max_lines, max_bytes)
        self._order = 0

    def run(self, sources: Sequence[Source]) -> None:
        """Post every article of `sources`, in order.

        Raises:
            OSError: a file could not be read.
            ApiError: the API could not be reached, refused the key, failed, or refused a
                request in a way that is not about one article.
        """
        for source in sources:
            self.summary.files += 1
            if source.text:
                self._post_text(source)
                continue
            for item in read_raw_records(source.path):
                order = self._next()
                if isinstance(item, BadRecord):
                    self.summary.refuse(Refusal(order, item.where, item.reason))
                    self.progress.advance(item.nbytes, self.summary)
                    continue
                line = Line(order, item.where, ndjson_line(item.data), item.nbytes)
                if (full := self._batcher.add(line)) is not None:
                    self._post_batch(full)
        if rest := self._batcher.flush():
            self._post_batch(rest)

    def _next(self) -> int:
        self._order += 1
        return self._order

    def _post_text(self, source: Source) -> None:
        data = Path(source.path).read_bytes()
        order = self._next()
        reply = self.client.send(
            "POST",
            "/v1/articles/text",
            body=data,
            content_type="text/plain; charset=utf-8",
            query={"language": self.language} if self.language else None,
        )
        if reply.status in _ARTICLE_REFUSALS:
            self.summary.refuse(Refusal(order, source.path, refusal_reason(reply.detail)))
        elif reply.status >= 400:
            raise RequestRefused(reply.status, reply.detail)
        else:
            try:
                receipt = ArticleReceipt.model_validate(reply.body)
            except ValidationError as exc:
                raise _unexpected(self.client, reply.status) from exc
            self.summary.count(receipt.status, order, source.path, refusal_reason(receipt.errors))
        self.progress.advance(len(data), self.summary)

    def _post_batch(self, lines: list[Line]) -> None:
        reply = self.client.send(
            "POST",
            "/v1/articles",
            body=b"\n".join(line.payload for line in lines),
            content_type=NDJSON,
        )
        if reply.status == 413 and len(lines) > 1:
            # Over the server's body or batch limit, lower than ours: halve until it fits.
            half = len(lines) // 2
            self._post_batch(lines[:half])
            self._post_batch(lines[half:])
            return
        if reply.status == 413:
            [line] = lines
            self.summary.refuse(Refusal(line.order, line.where, refusal_reason(reply.detail)))
        elif reply.status in (202, 207, 422) and isinstance(reply.body, dict):
            self._count_batch(lines, reply.status, reply.body)
        elif reply.status >= 400:
            raise RequestRefused(reply.status, reply.detail)
        else:
            raise _unexpected(self.client, reply.status)
        self.progress.advance(sum(line.nbytes for line in lines), self.summary)

    def _count_batch(self, lines: list[Line], status: int, body: dict[str, Any]) -> None:
        try:
            batch = BatchReceipt.model_validate(body)
        except ValidationError as exc:
            if status == 422:  # a 422 that is not a batch receipt: the request itself
                raise RequestRefused(status, body.get("detail", body)) from exc
            raise _unexpected(self.client, status) from exc
        numbers = sorted(item.line or 0 for item in batch.items)
        if numbers != list(range(1, len(lines) + 1)):
            raise ServerFailed(
                f"the ingest API at {self.client.url} answered {len(batch.items)} receipts "
                f"for a batch of {len(lines)} articles"
            )
        for item in batch.items:
            line = lines[(item.line or 0) - 1]
            self.summary.count(item.status, line.order, line.where, refusal_reason(item.errors))


def _unexpected(client: ApiClient, status: int) -> ServerFailed:
    return ServerFailed(
        f"the ingest API at {client.url} answered {status} with a body this command does not "
        "understand (is the URL the newsalert ingest API?)"
    )


# -- the command ----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Post the paths' articles; 0 none refused, 1 some refused or the API failed, 2 bad paths."""
    found = find_sources(args.paths)
    if found.problems:
        for problem in found.problems:
            fail(PROG, problem)
        return fail(PROG, "nothing was sent", code=2)
    if not found.files:
        return fail(
            PROG,
            f"no article files ({', '.join(ARTICLE_SUFFIXES)}) in {', '.join(args.paths)}",
            code=2,
        )

    def post(client: ApiClient) -> int:
        progress = Progress(
            sys.stderr, found.total_bytes, tty=sys.stderr.isatty(), enabled=not args.quiet
        )
        ingester = Ingester(client, progress, language=args.language, max_lines=args.batch_size)
        ingester.summary.skipped = found.skipped
        try:
            ingester.run(found.files)
        except OSError as exc:
            _finish(args, ingester, complete=False)
            return fail(PROG, f"cannot read: {exc}", code=2)
        except ApiError as exc:
            if ingester.summary.articles:  # else the error says it all
                _finish(args, ingester, complete=False)
            if isinstance(exc, ApiUnreachable | ServerFailed):
                exc.lines.append(
                    "run the same command again when the API is back: articles already "
                    "accepted come back as duplicates"
                )
            return report(PROG, exc)
        except KeyboardInterrupt:
            _finish(args, ingester, complete=False)
            return fail(PROG, "interrupted", code=130)
        _finish(args, ingester, complete=True)
        return 1 if ingester.summary.refused else 0

    return run_with_client(PROG, args, post)


def _finish(args: argparse.Namespace, ingester: Ingester, *, complete: bool) -> None:
    ingester.progress.close(ingester.summary, complete=complete)
    if args.json:
        sys.stdout.write(json.dumps(ingester.summary.to_json(complete), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(ingester.summary.format(complete=complete) + "\n")
    sys.stdout.flush()
