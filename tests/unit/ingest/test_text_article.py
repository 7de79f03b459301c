"""Plain-text articles: headline, byline, date and body apart, site boilerplate left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.ingest.text_article import article_in_from_text, parse_text_article

SEEDS = Path(__file__).resolve().parents[3] / "seeds"
EXAMINER = SEEDS / "000_96e167dc266a1ce7.txt"
INSTITUTE = SEEDS / "004_a1267b0052e9a97b.txt"


def test_seed_headline_and_byline() -> None:
    parsed = parse_text_article(EXAMINER.read_text("utf-8"))

    assert parsed.title == (
        "Chinese defense minister heading to Russia to discuss ‘practical cooperation’"
    )
    assert parsed.byline == "Joel Gehrke"
    assert parsed.published_at is None


def test_seed_boilerplate_removed_and_reported() -> None:
    parsed = parse_text_article(EXAMINER.read_text("utf-8"))

    assert parsed.removed == [
        "Video Embed",
        "KREMLIN DENIES RUSSIAN INFIGHTING ALLEGED IN LEAKS",
        "CLICK HERE TO READ MORE FROM THE WASHINGTON EXAMINER",
    ]
    for line in parsed.removed:
        assert line not in parsed.body
    assert "Joel Gehrke" not in parsed.body


def test_seed_body_keeps_paragraph_text_exactly() -> None:
    text = EXAMINER.read_text("utf-8")
    parsed = parse_text_article(text)

    assert "Li Shangfu" in parsed.body
    paragraphs = parsed.body.split("\n\n")
    assert paragraphs[0].startswith("China‘s defense minister, Li Shangfu, will travel")
    # Every paragraph is a line of the source, character for character.
    source_lines = {line.strip() for line in text.splitlines()}
    assert all(paragraph in source_lines for paragraph in paragraphs)
    assert len(paragraphs) == 12  # 17 lines less headline, byline and 3 boilerplate


def test_seed_date_line_under_headline() -> None:
    parsed = parse_text_article(INSTITUTE.read_text("utf-8"))

    assert parsed.title == "China sends its defense minister to Russia"
    assert parsed.byline is None
    assert parsed.published_at == datetime(2023, 4, 15, tzinfo=UTC)
    assert "April 15, 2023" not in parsed.body


def test_seed_copyright_footer_removed() -> None:
    parsed = parse_text_article(INSTITUTE.read_text("utf-8"))

    assert parsed.removed == ["© 2015 - 2024 Conservative Institute. All Rights Reserved."]
    assert "Li Shangfu" in parsed.body
    assert "Conservative Institute" not in parsed.body
    # A short capitalised line far from the headline is an attribution, not a byline.
    assert parsed.body.endswith('laws of nature."\n\nThomas Jefferson')


def test_blank_runs_collapse_to_one_paragraph_break() -> None:
    parsed = parse_text_article("Headline\n\n\n\nFirst paragraph.\n \n\t\nSecond paragraph.\n")

    assert parsed.body == "First paragraph.\n\nSecond paragraph."


def test_empty_text_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_text_article("")
    with pytest.raises(ValueError, match="headline"):
        parse_text_article(" \n\n\t\n")


def test_headline_only() -> None:
    parsed = parse_text_article("\n  Just a headline  \n\n")

    assert parsed.title == "Just a headline"
    assert parsed.body == ""
    assert parsed.byline is None
    assert parsed.published_at is None
    assert parsed.removed == []


def test_byline_then_date() -> None:
    parsed = parse_text_article(
        "Headline\nBy Jane van der Berg\nApr. 15, 2023 10:30 AM\nThe story begins."
    )

    assert parsed.byline == "Jane van der Berg"
    assert parsed.published_at == datetime(2023, 4, 15, 10, 30, tzinfo=UTC)
    assert parsed.body == "The story begins."


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("April 15, 2023", datetime(2023, 4, 15, tzinfo=UTC)),
        ("15 April 2023", datetime(2023, 4, 15, tzinfo=UTC)),
        ("2023-04-15", datetime(2023, 4, 15, tzinfo=UTC)),
        ("Apr. 15, 2023 10:30 AM", datetime(2023, 4, 15, 10, 30, tzinfo=UTC)),
        ("Saturday, April 15, 2023", datetime(2023, 4, 15, tzinfo=UTC)),
        ("Published: 15 Apr 2023, 14:00 GMT", datetime(2023, 4, 15, 14, tzinfo=UTC)),
        (
            "April 15, 2023 at 10:30 p.m. EDT",
            datetime(2023, 4, 15, 22, 30, tzinfo=timezone(timedelta(hours=-4))),
        ),
        (
            "Jan 3, 2024 9:05 AM ET",
            datetime(2024, 1, 3, 9, 5, tzinfo=timezone(timedelta(hours=-5))),
        ),
        (
            "2023-04-15T10:30:00+02:00",
            datetime(2023, 4, 15, 10, 30, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_date_line_formats(line: str, expected: datetime) -> None:
    parsed = parse_text_article(f"Headline\n{line}\nBody.")

    assert parsed.published_at == expected
    assert parsed.published_at is not None
    assert parsed.published_at.utcoffset() == expected.utcoffset()
    assert parsed.body == "Body."


@pytest.mark.parametrize(
    "line",
    [
        "April 31, 2023",  # no such day
        "Marchy 15, 2023",
        "April 15, 2023 10:30 XYZ",  # a zone we cannot place is no date
        "April 15, 2023 was a Saturday.",
    ],
)
def test_not_a_date_line_stays_in_body(line: str) -> None:
    parsed = parse_text_article(f"Headline\n{line}")

    assert parsed.published_at is None
    assert parsed.body == line


@pytest.mark.parametrize(
    "line",
    [
        "He said it was over.",
        "this is lower case",
        "One Two Three Four Five Six Seven",
        "A very long line of Capitalised Words That Goes On And On Past Sixty",
        "Breaking: Talks Collapse",
    ],
)
def test_not_a_byline_stays_in_body(line: str) -> None:
    parsed = parse_text_article(f"Headline\n{line}")

    assert parsed.byline is None
    assert parsed.body == line


@pytest.mark.parametrize(
    "line",
    [
        "Video Embed",
        "click here to subscribe",
        "Advertisement",
        "Share this article",
        "Sign up for our daily politics newsletter",
        "Copyright 2024 Example Media",
        "All rights reserved.",
        "MORE FROM THE WASHINGTON EXAMINER",
    ],
)
def test_boilerplate_lines_dropped(line: str) -> None:
    parsed = parse_text_article(f"Headline\nFirst paragraph.\n{line}\nLast paragraph.")

    assert parsed.removed == [line]
    assert parsed.body == "First paragraph.\n\nLast paragraph."


def test_news_about_copyright_is_kept() -> None:
    paragraph = (
        "The court found that the copyright claim, which the studio had pressed for a decade "
        "against the archive and its founders, failed on every count, and it said so at "
        "length in a ruling that ran to more than two hundred pages."
    )
    parsed = parse_text_article(f"Headline\n{paragraph}\nNATO")

    assert parsed.body == f"{paragraph}\n\nNATO"
    assert parsed.removed == []


def test_article_in_from_text() -> None:
    article = article_in_from_text(
        INSTITUTE.read_text("utf-8"),
        url="https://www.conservativeinstitute.org/world/china-russia.htm",
        language="en",
    )

    assert article.source == "conservativeinstitute.org"
    assert article.title == "China sends its defense minister to Russia"
    assert article.published_at == datetime(2023, 4, 15, tzinfo=UTC)
    assert article.language == "en"
    assert article.id is None
    assert "Conservative Institute" not in article.body


def test_article_in_from_text_without_url() -> None:
    article = article_in_from_text("Headline only")

    assert article.url is None
    assert article.source is None
    assert article.title == "Headline only"
    assert article.body == ""
