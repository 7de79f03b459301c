"""Feeds: RSS 2.0, RSS 1.0 and Atom into ArticleIn items; hostile or broken XML into errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.article import MAX_TEXT_CHARS
from services.ingest.feeds import parse_feed

FEEDS = Path(__file__).resolve().parents[2] / "fixtures" / "feeds"


def fixture(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def rss(items: str, channel: str = "", encoding: str = "utf-8") -> bytes:
    document = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>T</title>{channel}{items}</channel></rss>"
    )
    return document.encode(encoding)


# --- RSS 2.0 -------------------------------------------------------------------------------


def test_rss2_items_in_order() -> None:
    result = parse_feed(fixture("rss2.xml"))

    assert result.errors == []
    assert result.title == "Example Wire & Co"
    assert [item.title for item in result.items] == [
        "Chinese defense minister heads to Moscow",
        "Kremlin denies infighting & leaks",
        "AT&T and x < y: plain text stays as written",
    ]
    assert all(item.language == "en-us" for item in result.items)
    assert all(item.source == "example.com" for item in result.items)


def test_rss2_content_encoded_preferred_and_reduced_to_text() -> None:
    first = parse_feed(fixture("rss2.xml")).items[0]

    assert first.body == (
        "Li Shangfu will travel to Russia next week.\n\n"
        "Officials said the talks cover “practical cooperation” & drills.\nSecond line.\n\n"
        "First point\n\nSecond point"
    )
    assert "Short summary" not in first.body
    assert "track" not in first.body
    assert "color" not in first.body


def test_rss2_escaped_html_description_and_entities() -> None:
    second = parse_feed(fixture("rss2.xml")).items[1]

    assert second.body == "The Kremlin denied it.\n\nCafé talk — none."


def test_rss2_plain_text_description_kept_as_written() -> None:
    third = parse_feed(fixture("rss2.xml")).items[2]

    assert third.body == "First paragraph.\n\nSecond paragraph."


def test_rss2_ids_come_from_links_not_from_guids() -> None:
    items = parse_feed(fixture("rss2.xml")).items

    # A guid is unique only within its feed: with a link, the url decides the id downstream.
    assert [item.id for item in items] == [None, None, None]


def test_a_guid_is_the_id_only_of_an_item_without_a_link() -> None:
    result = parse_feed(rss('<item><title>A</title><guid isPermaLink="false">wire:7</guid></item>'))

    assert result.items[0].id == "wire:7"


def test_rss2_permalink_guid_stands_in_for_missing_link() -> None:
    items = parse_feed(fixture("rss2.xml")).items

    assert items[0].url == "https://www.example.com/world/li-shangfu-moscow?utm_source=rss"
    assert items[1].url == "https://www.example.com/world/kremlin-denies"


def test_rss2_guid_not_a_permalink_is_no_url() -> None:
    result = parse_feed(
        rss('<item><title>A</title><guid isPermaLink="false">https://x.example/a</guid></item>')
    )

    assert result.items[0].url is None
    assert result.items[0].id is None


def test_rss2_relative_link_resolved_against_channel_link() -> None:
    result = parse_feed(
        rss(
            "<item><title>A</title><link>/news/a</link></item>",
            channel="<link>https://www.example.org/section/</link>",
        )
    )

    assert result.items[0].url == "https://www.example.org/news/a"


@pytest.mark.parametrize(
    ("pub_date", "expected"),
    [
        ("Sat, 15 Apr 2023 10:30:00 +0200", datetime(2023, 4, 15, 8, 30, tzinfo=UTC)),
        ("Sat, 15 Apr 2023 10:30:00 -0700", datetime(2023, 4, 15, 17, 30, tzinfo=UTC)),
        ("Sat, 15 Apr 2023 10:30:00 GMT", datetime(2023, 4, 15, 10, 30, tzinfo=UTC)),
        ("Sat, 15 Apr 2023 10:30:00 EDT", datetime(2023, 4, 15, 14, 30, tzinfo=UTC)),
        ("Sat, 15 Apr 2023 10:30:00 PST", datetime(2023, 4, 15, 18, 30, tzinfo=UTC)),
        ("Sat, 15 Apr 2023 10:30:00 -0000", datetime(2023, 4, 15, 10, 30, tzinfo=UTC)),
        ("15 Apr 2023 10:30", datetime(2023, 4, 15, 10, 30, tzinfo=UTC)),
        ("2023-04-15T10:30:00+02:00", datetime(2023, 4, 15, 8, 30, tzinfo=UTC)),
        ("  Sat, 15 Apr 2023 10:30:00 Z  ", datetime(2023, 4, 15, 10, 30, tzinfo=UTC)),
    ],
)
def test_rss2_pub_date_zones(pub_date: str, expected: datetime) -> None:
    result = parse_feed(rss(f"<item><title>A</title><pubDate>{pub_date}</pubDate></item>"))

    published = result.items[0].published_at
    assert published == expected
    assert published is not None
    assert published.tzinfo is not None


def test_rss2_pub_date_offset_kept() -> None:
    published = parse_feed(fixture("rss2.xml")).items[1].published_at

    assert published is not None
    assert published.utcoffset() == timedelta(hours=-4)
    assert published == datetime(2023, 4, 14, 18, tzinfo=timezone(timedelta(hours=-4)))


@pytest.mark.parametrize("pub_date", ["yesterday", "", "Sat, 99 Foo 2023 99:99:99 +0000"])
def test_rss2_unreadable_pub_date_left_out(pub_date: str) -> None:
    result = parse_feed(rss(f"<item><title>A</title><pubDate>{pub_date}</pubDate></item>"))

    assert result.errors == []
    assert result.items[0].published_at is None


def test_non_ascii_titles() -> None:
    result = parse_feed(
        rss(
            "<item><title>Министр обороны Китая едет в Москву</title></item>"
            "<item><title>中国国防部长访问俄罗斯</title></item>"
            "<item><title>Größe &amp; Café — ﬁne</title></item>"
        )
    )

    assert [item.title for item in result.items] == [
        "Министр обороны Китая едет в Москву",
        "中国国防部长访问俄罗斯",
        "Größe & Café — ﬁne",
    ]


def test_declared_latin1_encoding() -> None:
    result = parse_feed(rss("<item><title>Café in Zürich</title></item>", encoding="iso-8859-1"))

    assert result.items[0].title == "Café in Zürich"


def test_odd_channel_language_is_dropped_not_fatal() -> None:
    result = parse_feed(
        rss("<item><title>A</title></item>", channel="<language>English</language>")
    )

    assert result.errors == []
    assert result.items[0].language is None


def test_item_without_title_or_text_skipped() -> None:
    result = parse_feed(
        rss(
            "<item><title>Kept</title></item>"
            "<item><link>https://x.example/empty</link><description>  </description></item>"
            "<item><description>Text only</description></item>"
        )
    )

    assert [(item.title, item.body) for item in result.items] == [
        ("Kept", ""),
        ("", "Text only"),
    ]
    assert result.errors == ["item 1: skipped, it has neither a title nor any text"]


def test_oversized_item_skipped_with_error_others_kept() -> None:
    body = "word " * (600 * 1024 // 5)
    assert len(body) > MAX_TEXT_CHARS
    result = parse_feed(
        rss(
            "<item><title>Before</title></item>"
            f"<item><title>Huge</title><description>{body}</description></item>"
            "<item><title>After</title></item>"
        )
    )

    assert [item.title for item in result.items] == ["Before", "After"]
    assert len(result.errors) == 1
    assert result.errors[0].startswith("item 1: skipped, body: ")
    assert str(MAX_TEXT_CHARS) in result.errors[0]


def test_html_with_unclosed_markup_stays_linear() -> None:
    # html.parser rescans the rest of the input for each of these: quadratic without the
    # normalising pass (minutes for this size).
    hostile = ("<a b='>'" * 40_000) + ("<a" * 40_000) + ("<p><" * 40_000)
    data = rss(f"<item><title>A</title><description><![CDATA[{hostile}]]></description></item>")

    started = time.perf_counter()
    result = parse_feed(data)

    assert time.perf_counter() - started < 5
    assert len(result.items) == 1


def test_deeply_nested_markup_skips_only_that_item() -> None:
    nested = "<div>" * 5000 + "x" + "</div>" * 5000
    result = parse_feed(
        rss(
            f"<item><title>Deep</title><description>{nested}</description></item>"
            "<item><title>Fine</title></item>"
        )
    )

    assert [item.title for item in result.items] == ["Fine"]
    assert result.errors == ["item 0: skipped, its markup is nested too deeply to read"]


def test_public_doctype_without_entities_is_read() -> None:
    data = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91'
        b'//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
        b'<rss version="0.91"><channel><title>Old</title>'
        b"<item><title>Hi</title><link>http://old.example/a</link></item></channel></rss>"
    )
    result = parse_feed(data)

    assert result.errors == []
    assert result.items[0].url == "http://old.example/a"


# --- Atom and RSS 1.0 ----------------------------------------------------------------------


def test_atom_entries() -> None:
    result = parse_feed(fixture("atom.xml"))

    assert result.errors == []
    assert result.title == "Beispiel Nachrichten"
    first, second = result.items
    assert first.title == "Verteidigungsminister Li reist nach Moskau"
    assert first.url == "https://news.example.de/politik/li-moskau"
    assert first.source == "news.example.de"
    assert first.body == "Erster Absatz über Größe.\n\nZweiter Absatz."
    assert first.id is None  # it has a link: the url decides the id
    assert first.language == "de"
    # published wins over updated
    assert first.published_at == datetime(2023, 4, 15, 7, 30, tzinfo=UTC)
    assert second.body == "Escaped & HTML summary."
    assert second.id is None  # "tag:...,2023:..." holds a comma
    assert second.language == "en"
    assert second.published_at == datetime(2023, 4, 14, 8, tzinfo=UTC)


def test_rdf_items_beside_channel() -> None:
    result = parse_feed(fixture("rdf.xml"))

    assert result.errors == []
    assert result.title == "RDF Example"
    assert [item.title for item in result.items] == [
        "Pacific Fleet drills announced",
        "Second RDF item",
    ]
    assert result.items[0].url == "https://rdf.example.org/a"
    assert result.items[0].body == "Moscow announced surprise drills."
    assert result.items[0].published_at == datetime(2023, 4, 14, 7, tzinfo=UTC)
    assert result.items[0].language == "en"


# --- Broken and hostile documents ----------------------------------------------------------


def test_malformed_xml_is_an_error_result() -> None:
    result = parse_feed(fixture("malformed.xml"))

    assert result.items == []
    assert result.title is None
    assert len(result.errors) == 1
    assert "not well-formed" in result.errors[0]


def test_billion_laughs_refused_without_expansion() -> None:
    started = time.perf_counter()
    result = parse_feed(fixture("billion_laughs.xml"))

    assert time.perf_counter() - started < 1
    assert result.items == []
    assert len(result.errors) == 1
    assert "entities" in result.errors[0]
    assert "lollol" not in result.errors[0]


def test_external_entity_refused() -> None:
    result = parse_feed(fixture("external_entity.xml"))

    assert result.items == []
    assert len(result.errors) == 1
    assert "entities" in result.errors[0]
    assert "root:" not in result.errors[0]


def test_external_parameter_entity_refused() -> None:
    data = b'<!DOCTYPE rss [<!ENTITY % p SYSTEM "http://evil.example/x.dtd"> %p;]><rss/>'

    result = parse_feed(data)

    assert result.items == []
    assert "entities" in result.errors[0]


@pytest.mark.parametrize(
    "data",
    [b"", b"   ", b"\xff\xfe\x00", b'<?xml version="1.0" encoding="nope"?><rss/>', b"{}"],
)
def test_not_xml_is_an_error_result(data: bytes) -> None:
    result = parse_feed(data)

    assert result.items == []
    assert result.errors


def test_not_a_feed_root() -> None:
    result = parse_feed(b"<html><body>hi</body></html>")

    assert result.items == []
    assert result.errors == ["not a feed: the root element is <html>, not rss, rdf:RDF or feed"]


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=512))
def test_any_bytes_never_raise(data: bytes) -> None:
    result = parse_feed(data)

    assert isinstance(result.items, list)
    assert all(isinstance(error, str) for error in result.errors)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet=st.sampled_from("<>/!-?[]'\"=&;#x ap\nCDAT"), max_size=200))
def test_any_description_markup_never_raises(markup: str) -> None:
    cdata = markup.replace("]]>", "]] >")
    result = parse_feed(
        rss(f"<item><title>A</title><description><![CDATA[{cdata}]]></description></item>")
    )

    assert len(result.items) == 1
    body = result.items[0].body
    assert body == body.strip()
    assert "\n\n\n" not in body
