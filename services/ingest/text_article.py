"""Scraped plain-text articles: headline, byline, date and body, with site boilerplate removed.

The seed format is what scrapers produce: the headline on the first line, then perhaps a byline
and a date, then one paragraph per line, interleaved with page furniture ("Video Embed",
"CLICK HERE TO READ MORE ...", related-link lines in capitals, copyright footers). This module
separates the article from the furniture and keeps every paragraph's text as written, so the
quotes an alert cites from the body are the article's own words. No I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from schemas.article import ArticleIn
from schemas.identity import source_domain

_BYLINE_MAX_CHARS = 60
_BYLINE_MAX_WORDS = 5
# Footers and sign-up prompts are short; a long paragraph that mentions copyright is news.
_FURNITURE_MAX_CHARS = 200

_FURNITURE_LINES = frozenset(
    {
        "video embed",
        "advertisement",
        "share this article",
        "share this story",
        "story continues below advertisement",
    }
)
_COPYRIGHT = re.compile(r"©|^\(c\)\s|^copyright\b|\ball rights reserved\b", re.IGNORECASE)
_NEWSLETTER = re.compile(
    r"^(?:sign\s+up|subscribe)\b.*\bnewsletters?\b|^get\s+(?:our|the)\b.*\bnewsletters?\b",
    re.IGNORECASE,
)

# A byline is a name, not a sentence: these never occur in one. Periods are checked per word
# because initials ("John F. Kennedy") and titles ("Dr.") carry them.
_SENTENCE_PUNCTUATION = re.compile(r"[!?;:\"“”„«»]")
_BY_PREFIX = re.compile(r"^by(?::\s*|\s+)", re.IGNORECASE)
_NAME_PARTICLES = frozenset(
    {"and", "&", "al", "bin", "da", "de", "del", "della", "den", "der", "di", "dos", "du"}
    | {"el", "ibn", "la", "le", "st", "van", "von", "y"}
)
_ABBREVIATIONS = frozenset({"jr.", "sr.", "dr.", "mr.", "mrs.", "ms.", "prof.", "st."})
_INITIALS = re.compile(r"^(?:[A-Z]\.)+,?$")

_MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3,
    "apr": 4, "april": 4, "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7,
    "aug": 8, "august": 8, "sep": 9, "sept": 9, "september": 9, "oct": 10, "october": 10,
    "nov": 11, "november": 11, "dec": 12, "december": 12,
}  # fmt: skip

# Fixed-offset abbreviations only: an abbreviation we cannot place in time makes the line no
# date at all rather than a date hours off.
_ZONE_HOURS = {
    "z": 0, "ut": 0, "utc": 0, "gmt": 0, "wet": 0,
    "bst": 1, "cet": 1, "west": 1, "cest": 2, "eet": 2, "eest": 3, "msk": 3,
    "jst": 9, "kst": 9, "aest": 10, "aedt": 11,
    "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6, "pst": -8, "pdt": -7,
}  # fmt: skip
# US generic zones ("10:30 AM ET") switch offset with daylight saving time: standard offset.
_US_GENERIC_ZONES = {"et": -5, "ct": -6, "mt": -7, "pt": -8}

_PREFIX = r"^(?:(?:last\s+)?(?:published|updated|posted)(?:\s+on)?\s*:?\s*)?"
_WEEKDAY = r"(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?\s+)?"
_TIME = (
    r"(?:(?:,?\s+(?:at\s+)?|T|\s+[-|•·]\s+)"
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.\d+)?)?)?"
    r"\s*(?P<ampm>[ap]\.?\s?m\.?)?"
    r"(?:\s*\(?(?P<zone>(?:utc|gmt)?\s*[+-]\d{1,2}(?::?\d{2})?|[a-z]{1,5})\)?)?)?\s*$"
)
_DATE_LINES = tuple(
    re.compile(_PREFIX + _WEEKDAY + pattern + _TIME, re.IGNORECASE)
    for pattern in (
        r"(?P<month>[a-z]{3,9})\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>\d{4})",
        r"(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?"
        r"(?P<month>[a-z]{3,9})\.?,?\s+(?P<year>\d{4})",
        r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})",
    )
)
_OFFSET = re.compile(r"^(?:utc|gmt)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ParsedText:
    """A plain-text article taken apart.

    Attributes:
        title: The headline: the first non-empty line, trimmed.
        byline: The author line under the headline without a leading "By", if there is one.
        published_at: The date line under the headline (or under the byline), tz-aware; UTC
            when the line names no zone, midnight UTC when it gives no time.
        body: The paragraphs, each its line with surrounding whitespace trimmed and the text
            inside untouched, joined by blank lines.
        removed: The boilerplate lines left out of the body, trimmed, in order.
    """

    title: str
    byline: str | None
    published_at: datetime | None
    body: str
    removed: list[str]


def parse_text_article(text: str) -> ParsedText:
    """Take a scraped plain-text article apart into headline, byline, date and body.

    The line right under the headline is a byline when it is a short run of capitalised words
    (at most 60 characters, 1 to 5 words, no sentence punctuation), and a publication date when
    it reads as one ("April 15, 2023", "15 April 2023", "2023-04-15", "Apr. 15, 2023 10:30 AM
    EDT"); a date may also follow the byline. Every other line is a paragraph unless it is site
    boilerplate: "Video Embed", "CLICK HERE ..." prompts, copyright footers, related-link lines
    in capitals (three or more words, no lower-case letter), "Advertisement", "Share this
    article" and newsletter sign-up prompts.

    Args:
        text: The article as plain text, one paragraph per line.

    Returns:
        The parts of the article, and the boilerplate lines that were dropped.

    Raises:
        ValueError: When the text has no non-empty line, so there is no headline.
    """
    lines = text.removeprefix("\ufeff").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        raise ValueError("the text article is empty: its first non-empty line must be a headline")
    title = lines[start].strip()
    byline: str | None = None
    published_at: datetime | None = None
    paragraphs: list[str] = []
    removed: list[str] = []
    # Byline and date count only directly under the headline; further down, a short capitalised
    # line is a subheading or a quote's attribution, and a date is part of the story.
    expect_byline, expect_date = True, True
    for raw in lines[start + 1 :]:
        line = raw.strip()
        if not line:
            continue
        if _is_boilerplate(line):
            removed.append(line)
            continue
        if expect_date and (when := _parse_date_line(line)) is not None:
            published_at = when
            expect_byline = expect_date = False
            continue
        if expect_byline and (name := _parse_byline(line)) is not None:
            byline = name
            expect_byline = False
            continue
        expect_byline = expect_date = False
        paragraphs.append(line)
    return ParsedText(
        title=title,
        byline=byline,
        published_at=published_at,
        body="\n\n".join(paragraphs),
        removed=removed,
    )


def article_in_from_text(
    text: str, url: str | None = None, language: str | None = None
) -> ArticleIn:
    """The ArticleIn for a plain-text article: its headline, body and date, its source from `url`.

    Args:
        text: The article as plain text (see `parse_text_article`).
        url: Where the article was published, if known; its host becomes the source.
        language: ISO 639 code of the text, if known.

    Returns:
        The article as a client would submit it, without an id (the url or text decides it).

    Raises:
        ValueError: When the text has no headline, or the parts break the ArticleIn limits
            (pydantic's ValidationError is a ValueError).
    """
    parsed = parse_text_article(text)
    return ArticleIn(
        url=url,
        source=source_domain(url) if url else None,
        title=parsed.title,
        body=parsed.body,
        language=language,
        published_at=parsed.published_at,
    )


def _is_boilerplate(line: str) -> bool:
    folded = line.casefold()
    if folded.rstrip(".!:") in _FURNITURE_LINES or folded.startswith("click here"):
        return True
    if len(line) <= _FURNITURE_MAX_CHARS and (_COPYRIGHT.search(line) or _NEWSLETTER.search(line)):
        return True
    return _is_capitals_link(line)


def _is_capitals_link(line: str) -> bool:
    words = [word for word in line.split() if any(c.isalpha() for c in word)]
    return len(words) >= 3 and not any(c.islower() for c in line) and any(c.isupper() for c in line)


def _parse_byline(line: str) -> str | None:
    name = _BY_PREFIX.sub("", line).strip().rstrip(",").strip()
    if len(line) > _BYLINE_MAX_CHARS or _SENTENCE_PUNCTUATION.search(name):
        return None
    words = name.replace(",", " ").split()
    capitalised = 0
    for word in words:
        if "." in word and not (_INITIALS.match(word) or word.casefold() in _ABBREVIATIONS):
            return None
        if word[0].isupper():
            capitalised += 1
        elif word.casefold() not in _NAME_PARTICLES:
            return None
    if not 1 <= capitalised <= _BYLINE_MAX_WORDS or len(words) > _BYLINE_MAX_WORDS + 2:
        return None
    return name


def _parse_date_line(line: str) -> datetime | None:
    for pattern in _DATE_LINES:
        match = pattern.match(line)
        if match is not None:
            return _datetime_from(match)
    return None


def _datetime_from(match: re.Match[str]) -> datetime | None:
    month_text = match["month"]
    month = int(month_text) if month_text.isdigit() else _MONTHS.get(month_text.casefold())
    if month is None:
        return None
    hour, minute, second = 0, 0, 0
    if match["hour"] is not None:
        if match["minute"] is None and match["ampm"] is None:
            return None  # "April 15, 2023 10" is a number after a date, not a time
        hour = int(match["hour"])
        minute = int(match["minute"] or 0)
        second = int(match["second"] or 0)
        if match["ampm"] is not None:
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if match["ampm"][0] in "pP" else 0)
    year, day = int(match["year"]), int(match["day"])
    try:
        # Naive on purpose: the zone is resolved against this wall time, then attached.
        local = datetime(year, month, day, hour, minute, second)  # noqa: DTZ001
    except ValueError:
        return None
    zone = _zone(match["zone"], local) if match["zone"] is not None else UTC
    return None if zone is None else local.replace(tzinfo=zone)


def _zone(name: str, local: datetime) -> timezone | None:
    folded = name.casefold().replace(" ", "")
    if folded in _ZONE_HOURS:
        return timezone(timedelta(hours=_ZONE_HOURS[folded]))
    if folded in _US_GENERIC_ZONES:
        hours = _US_GENERIC_ZONES[folded] + (1 if _us_daylight_time(local) else 0)
        return timezone(timedelta(hours=hours))
    offset = _OFFSET.match(folded)
    if offset is None:
        return None
    sign, offset_hours, offset_minutes = offset.groups()
    delta = timedelta(hours=int(offset_hours), minutes=int(offset_minutes or 0))
    if delta >= timedelta(hours=24) or int(offset_minutes or 0) >= 60:
        return None
    return timezone(-delta if sign == "-" else delta)


def _us_daylight_time(local: datetime) -> bool:
    # US rule since 2007: from the second Sunday of March to the first Sunday of November,
    # 02:00 local time. Computed rather than looked up, as the tz database is a file.
    def sunday(year: int, month: int, nth: int) -> datetime:
        first = date(year, month, 1)
        day = 1 + (6 - first.weekday()) % 7 + 7 * (nth - 1)
        return datetime(year, month, day, 2)  # noqa: DTZ001 - compared with local wall time

    return sunday(local.year, 3, 2) <= local < sunday(local.year, 11, 1)
