"""Feed poller: the pure parts (URL checks, cache validators, outcome classification)."""

from __future__ import annotations

import re

import pytest

from schemas.article import ArticleIn
from services.common.settings import IngestSettings
from services.ingest.feeds import FeedParseResult
from services.ingest.poller import (
    FeedConfigError,
    FeedOutcome,
    FeedPoll,
    PollRound,
    Validators,
    check_feed_urls,
    is_document_error,
    redact_url,
)
from services.ingest.service import IngestService


def test_http_and_https_feed_urls_are_kept_in_order_without_repeats() -> None:
    urls = ["https://a.example/feed", " http://b.example/rss ", "https://a.example/feed"]

    assert check_feed_urls(urls) == ["https://a.example/feed", "http://b.example/rss"]


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/feed.xml", "gopher://x", "example.com/feed", ""],
)
def test_a_feed_url_that_is_not_http_is_refused_with_its_name(url: str) -> None:
    with pytest.raises(FeedConfigError, match=re.escape(f"NEWSALERT_FEEDS: {url!r} is not")):
        check_feed_urls([url])


def test_a_feed_url_without_a_host_is_refused() -> None:
    with pytest.raises(FeedConfigError, match="names no host"):
        check_feed_urls(["https:///feed.xml"])


def test_loopback_and_private_feed_urls_are_allowed_since_feeds_are_operator_configuration() -> (
    None
):
    urls = ["http://127.0.0.1:8000/feed", "http://10.0.0.5/rss", "http://localhost/atom"]

    assert check_feed_urls(urls) == urls


def test_the_service_refuses_a_non_http_feed_before_connecting_anywhere() -> None:
    settings = IngestSettings(feeds=["file:///etc/passwd"], bootstrap_servers="unused:1")

    with pytest.raises(FeedConfigError, match="file:///etc/passwd"):
        IngestService(settings)


def test_a_feed_password_never_reaches_a_log_line() -> None:
    assert redact_url("https://bob:s3cret@feeds.example/x?y=1") == (
        "https://bob:***@feeds.example/x?y=1"
    )
    assert redact_url("https://feeds.example/x") == "https://feeds.example/x"


def test_validators_come_from_the_response_headers_whatever_their_case() -> None:
    found = Validators.from_headers({"etag": '"abc"', "LAST-MODIFIED": "Sat, 15 Apr 2023"})

    assert found == Validators('"abc"', "Sat, 15 Apr 2023")


def test_validators_become_the_conditional_request_headers() -> None:
    assert Validators('"abc"', "Sat, 15 Apr 2023").request_headers() == {
        "If-None-Match": '"abc"',
        "If-Modified-Since": "Sat, 15 Apr 2023",
    }
    assert Validators().request_headers() == {}
    assert Validators.from_headers({"Content-Type": "application/xml"}) == Validators()


def test_a_document_error_is_unreadable_but_skipped_items_are_not() -> None:
    item = ArticleIn(title="t")

    assert is_document_error(FeedParseResult([], ["not well-formed XML: x"], None))
    assert not is_document_error(FeedParseResult([item], ["item 1: skipped, no text"], None))
    assert not is_document_error(FeedParseResult([], ["item 0: skipped, no text"], None))
    assert not is_document_error(FeedParseResult([], [], "An empty feed"))


def test_only_updated_and_not_modified_polls_are_healthy() -> None:
    assert {o for o in FeedOutcome if o.is_ok} == {
        FeedOutcome.UPDATED,
        FeedOutcome.NOT_MODIFIED,
    }


def test_a_round_finds_each_feed_by_url_and_sums_what_it_published() -> None:
    done = PollRound(
        3,
        (
            FeedPoll("https://a.example/", FeedOutcome.UPDATED, 200, accepted=2, duplicates=1),
            FeedPoll("https://b.example/", FeedOutcome.NOT_MODIFIED, 304),
        ),
    )

    assert done.accepted == 2
    assert done.feed("https://b.example/").status == 304
    with pytest.raises(KeyError):
        done.feed("https://c.example/")
