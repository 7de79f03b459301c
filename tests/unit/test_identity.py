"""rules.md section 6: article and alert ids are pure functions of their inputs."""

from __future__ import annotations

import re

import pytest

from schemas.identity import (
    alert_id,
    alert_id_of,
    alert_id_prefix,
    article_id,
    canonical_url,
    source_domain,
)

# --- Canonical URL ---------------------------------------------------------------------------

CANONICAL = [
    ("HTTPS://Example.COM/News/Story", "https://example.com/News/Story"),
    ("https://example.com/story#comments", "https://example.com/story"),
    ("https://example.com/story?utm_source=x&utm_medium=y", "https://example.com/story"),
    ("https://example.com/story?id=7&utm_campaign=z", "https://example.com/story?id=7"),
    ("https://example.com/story?UTM_Source=x&id=7", "https://example.com/story?id=7"),
    ("https://example.com:443/story", "https://example.com/story"),
    ("http://example.com:80/story", "http://example.com/story"),
    ("https://example.com:8443/story", "https://example.com:8443/story"),
    ("http://example.com:443/story", "http://example.com:443/story"),
    ("https://example.com", "https://example.com/"),
    ("  https://example.com/story  ", "https://example.com/story"),
    ("https://example.com/story?b=2&a=1", "https://example.com/story?b=2&a=1"),
]


@pytest.mark.parametrize(("url", "canonical"), CANONICAL, ids=[u for u, _ in CANONICAL])
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_the_path_keeps_its_case() -> None:
    assert canonical_url("https://EXAMPLE.com/A/b") == "https://example.com/A/b"


def test_canonical_url_is_idempotent() -> None:
    for url, _ in CANONICAL:
        assert canonical_url(canonical_url(url)) == canonical_url(url)


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://www.Reuters.com/world", "reuters.com"),
        ("https://uk.reuters.com/x", "uk.reuters.com"),
        ("not a url", None),
    ],
)
def test_source_domain(url: str, domain: str | None) -> None:
    assert source_domain(url) == domain


# --- Article id ------------------------------------------------------------------------------

URL = "https://example.com/story?id=7"


def test_the_client_id_comes_first() -> None:
    assert article_id("client-42", URL, "Title", "Body") == "client-42"


def test_without_client_id_the_canonical_url_decides() -> None:
    from_url = article_id(None, URL, "Title", "Body")
    assert from_url == article_id(None, URL, "Other title", "Other body")
    assert from_url == article_id(
        None, "HTTPS://EXAMPLE.com:443/story?id=7&utm_source=x#top", "", ""
    )
    assert from_url != article_id(None, "https://example.com/story?id=8", "Title", "Body")


def test_without_client_id_or_url_the_text_decides() -> None:
    from_text = article_id(None, None, "Title", "Body")
    assert from_text == article_id(None, None, "Title", "Body")
    assert from_text != article_id(None, None, "Title", "Other body")
    assert from_text != article_id(None, None, "Other title", "Body")
    assert from_text != article_id(None, URL, "Title", "Body")


def test_title_and_body_do_not_run_into_each_other() -> None:
    assert article_id(None, None, "ab", "c") != article_id(None, None, "a", "bc")


def test_empty_client_id_and_url_fall_through() -> None:
    assert article_id("", "", "Title", "Body") == article_id(None, None, "Title", "Body")


def test_derived_article_ids_are_valid_article_ids() -> None:
    pattern = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    assert pattern.match(article_id(None, URL, "", ""))
    assert pattern.match(article_id(None, None, "Title", "Body"))


# --- Alert id --------------------------------------------------------------------------------

ALERT_INPUTS = ("acme", "li-shangfu", "0123456789abcdef", "a1")


def test_alert_id_is_deterministic() -> None:
    assert alert_id(*ALERT_INPUTS) == alert_id(*ALERT_INPUTS)
    assert re.fullmatch(r"alert_[0-9a-f]{32}", alert_id(*ALERT_INPUTS))


@pytest.mark.parametrize(
    "position", range(4), ids=["tenant", "rule_id", "rule_version", "article_id"]
)
def test_alert_id_changes_with_each_of_its_inputs(position: int) -> None:
    changed = list(ALERT_INPUTS)
    changed[position] += "x"
    assert alert_id(*changed) != alert_id(*ALERT_INPUTS)


def test_alert_ids_never_change_between_releases() -> None:
    # Receivers deduplicate on alert ids across restarts and upgrades, so the ids are pinned
    # (computed by the code before `alert_id_prefix` existed): a change is a breaking change.
    assert alert_id(*ALERT_INPUTS) == "alert_8b8a9fc32d7a0612d7f9adeb1acff2a5"
    unicode_article = ("acme", "li-shangfu", "0123456789abcdef", "статья-é")
    assert alert_id(*unicode_article) == "alert_3b6ad29a1479f69f7e802c67459da00f"


def test_an_alert_id_from_its_rule_prefix_is_the_same_id() -> None:
    tenant, rule_id, version, article = ALERT_INPUTS
    prefix = alert_id_prefix(tenant, rule_id, version)
    assert alert_id_of(prefix, article.encode()) == alert_id(*ALERT_INPUTS)
    assert alert_id_of(prefix, "статья".encode()) == alert_id(tenant, rule_id, version, "статья")


def test_alert_id_inputs_do_not_run_into_each_other() -> None:
    assert alert_id("ab", "c", "v", "a") != alert_id("a", "bc", "v", "a")
    assert alert_id("a", "b", "c", "d") != alert_id("b", "a", "c", "d")
