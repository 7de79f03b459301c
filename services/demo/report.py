"""The demo's table of received webhooks, as plain text. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.alert import Alert

_WHITESPACE = re.compile(r"\s+")
ANSI_MARK = ("\x1b[1;33m", "\x1b[0m")
PLAIN_MARK = ("«", "»")


@dataclass(frozen=True)
class Delivered:
    """One webhook the receiver got: its alert and whether its signature verified."""

    alert: Alert
    signature_ok: bool


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def highlighted_snippet(alert: Alert, width: int, mark: tuple[str, str]) -> str:
    """The alert's snippet around its match, about `width` characters, the match marked."""
    snippet = alert.snippet
    if snippet is None:
        return ""
    flat = _flat(snippet.text[: snippet.match_start])
    match = _flat(snippet.text[snippet.match_start : snippet.match_end])
    after = _flat(snippet.text[snippet.match_end :])
    room = max(0, width - len(match))
    before = flat[len(flat) - room // 2 :] if room // 2 < len(flat) else flat
    after_cut = after[: room - len(before)]
    lead = "…" if len(before) < len(flat) else ""
    tail = "…" if len(after_cut) < len(after) else ""
    return f"{lead}{before}{mark[0]}{match}{mark[1]}{after_cut}{tail}"


def _flat(text: str) -> str:
    # Line breaks and runs of spaces would break the table; a single space stays put.
    return _WHITESPACE.sub(" ", text)


def render_table(rows: list[Delivered], mark: tuple[str, str] = PLAIN_MARK) -> str:
    """One line per delivery: rule, severity, headline, source, story, signature, evidence."""
    headers = ["RULE", "SEVERITY", "HEADLINE", "SOURCE", "STORY", "SIGNED", "EVIDENCE"]
    body = []
    for row in sorted(rows, key=lambda r: (r.alert.article.received_at, r.alert.rule_id)):
        alert = row.alert
        story = alert.story_id.removeprefix("story_")[:8]
        body.append(
            [
                alert.rule_id,
                alert.severity.value,
                _cut(alert.article.title, 44),
                alert.article.source or "-",
                story + (" (first)" if alert.first_of_story else ""),
                "ok" if row.signature_ok else "BAD",
                highlighted_snippet(alert, 60, mark),
            ]
        )
    widths = [
        max(len(headers[i]), *(len(_visible(r[i], mark)) for r in body)) if body else len(h)
        for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in body:
        cells = [c + " " * (w - len(_visible(c, mark))) for c, w in zip(r, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _visible(text: str, mark: tuple[str, str]) -> str:
    return text.replace(mark[0], "").replace(mark[1], "") if mark == ANSI_MARK else text
