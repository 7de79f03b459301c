"""Evidence of a match (rules.md section 5): token spans -> quoted text and a snippet. No I/O."""

from __future__ import annotations

from typing import NamedTuple

from services.matcher.engine.normalize import TokenStream
from services.matcher.engine.plan import FIELD_NAMES, Occurrence

SNIPPET_CONTEXT_CHARS = 80
_ELLIPSIS = "…"


class Span(NamedTuple):
    """One occurrence: `text == field_text[start:end]`."""

    field: str
    start: int
    end: int
    text: str


class Snippet(NamedTuple):
    """An excerpt around the first occurrence; `text[match_start:match_end]` is the match."""

    field: str
    text: str
    match_start: int
    match_end: int


class Quoted(NamedTuple):
    """The evidence of one match: spans sorted by field (title first) then start, and the
    snippet around the first span (None when there is no span)."""

    spans: tuple[Span, ...]
    snippet: Snippet | None


class Quotes:
    """One article's occurrences as spans and snippets, each worked out once.

    The alerts of one article quote the same few occurrences again and again (every rule
    naming "China" quotes the same "China"), so quoting is memoised per article.
    """

    __slots__ = ("_snippets", "_spans", "_streams", "_texts")

    def __init__(self, texts: tuple[str, str], streams: tuple[TokenStream, TokenStream]) -> None:
        self._texts = texts
        self._streams = streams
        self._spans: dict[Occurrence, Span] = {}
        self._snippets: dict[Span, Snippet] = {}

    def quote(self, occurrences: list[Occurrence]) -> Quoted:
        """The occurrences' spans, and the snippet of the first."""
        spans = tuple(self.spans(occurrences))
        return Quoted(spans, self.snippet(spans[0]) if spans else None)

    def spans(self, occurrences: list[Occurrence]) -> list[Span]:
        """Distinct occurrences as character spans, sorted by field (title first), then start."""
        memo = self._spans
        result: list[Span] = []
        for occurrence in sorted(set(occurrences)):
            span = memo.get(occurrence)
            if span is None:
                field, first, end = occurrence
                stream = self._streams[field]
                start, stop = stream.starts[first], stream.ends[end - 1]
                text = self._texts[field][start:stop]
                span = memo[occurrence] = Span(FIELD_NAMES[field], start, stop, text)
            result.append(span)
        return result

    def snippet(self, span: Span) -> Snippet:
        """The snippet around `span` (see `snippet`)."""
        found = self._snippets.get(span)
        if found is None:
            text = self._texts[0 if span.field == FIELD_NAMES[0] else 1]
            found = self._snippets[span] = snippet(span, text)
        return found


def snippet(span: Span, text: str, context: int = SNIPPET_CONTEXT_CHARS) -> Snippet:
    """About `context` characters either side of `span`, cut at spaces, one line."""
    left = max(0, span.start - context)
    right = min(len(text), span.end + context)
    # Cut at whitespace so words are not split, unless that would eat the whole context.
    if left > 0:
        space = text.find(" ", left, span.start)
        left = space + 1 if space != -1 else left
    if right < len(text):
        space = text.rfind(" ", span.end, right)
        right = space if space != -1 else right
    prefix = _ELLIPSIS if left > 0 else ""
    suffix = _ELLIPSIS if right < len(text) else ""
    body = " ".join(text[left:right].split("\n"))
    # Whitespace inside is kept as is (only newlines become spaces) so offsets hold.
    start = len(prefix) + span.start - left
    return Snippet(span.field, prefix + body + suffix, start, start + span.end - span.start)
