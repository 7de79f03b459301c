"""The demo's table: one row per webhook, the evidence marked where it matched."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.alert import Alert, ArticleSummary, Snippet
from schemas.common import Severity
from services.demo.report import PLAIN_MARK, Delivered, highlighted_snippet, render_table

TEXT = "China's defense minister, Li Shangfu, will travel to Russia next week."


def _alert(snippet: Snippet | None) -> Alert:
    return Alert(
        alert_id="alert_" + "0" * 32,
        tenant="demo",
        rule_id="li-shangfu",
        rule_name="Li Shangfu",
        rule_version="0123456789abcdef",
        severity=Severity.HIGH,
        article=ArticleSummary(
            article_id="a1",
            title="Chinese defense minister",
            source="example.com",
            received_at=datetime(2023, 4, 15, tzinfo=UTC),
        ),
        evidence=[],
        snippet=snippet,
        story_id="story_" + "ab" * 16,
        first_of_story=True,
        matched_at=datetime(2023, 4, 15, tzinfo=UTC),
    )


def test_the_match_is_marked_inside_its_context() -> None:
    start = TEXT.index("Li Shangfu")
    alert = _alert(Snippet(field="body", text=TEXT, match_start=start, match_end=start + 10))
    assert highlighted_snippet(alert, 200, PLAIN_MARK) == TEXT.replace("Li Shangfu", "«Li Shangfu»")
    short = highlighted_snippet(alert, 30, PLAIN_MARK)
    assert "«Li Shangfu»" in short
    assert short.startswith("…")
    assert short.endswith("…")


def test_a_row_names_rule_severity_source_story_and_signature() -> None:
    start = TEXT.index("Li Shangfu")
    alert = _alert(Snippet(field="body", text=TEXT, match_start=start, match_end=start + 10))
    table = render_table([Delivered(alert, signature_ok=True)])
    header, row = table.splitlines()
    assert header.split() == [
        "RULE",
        "SEVERITY",
        "HEADLINE",
        "SOURCE",
        "STORY",
        "SIGNED",
        "EVIDENCE",
    ]
    for cell in ("li-shangfu", "high", "example.com", "abababab (first)", "ok", "«Li Shangfu»"):
        assert cell in row
