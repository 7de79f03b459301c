"""Deterministic ids (rules.md section 6): the same input always yields the same id. No I/O.

Receivers deduplicate on these ids, and re-processing after a crash relies on them, so every
function here is a pure function of its arguments.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SEP = "\x1f"  # unit separator: cannot occur in ids, so fields never run into each other


def _digest(kind: str, *parts: str) -> str:
    return hashlib.sha256(_SEP.join((kind, *parts)).encode("utf-8")).hexdigest()[:32]


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no fragment, no `utm_*` parameters, no default port."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    default_port = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith("utm_")
        ]
    )
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def source_domain(url: str) -> str | None:
    """The host of `url` without a leading `www.`, lower-case; None when there is none."""
    host = (urlsplit(url.strip()).hostname or "").lower()
    host = host.removeprefix("www.")
    return host or None


def article_id(client_id: str | None, url: str | None, title: str, body: str) -> str:
    """The article's id: the client's, else from the canonical URL, else from the text."""
    if client_id:
        return client_id
    if url:
        return "url-" + _digest("url", canonical_url(url))
    return "txt-" + _digest("text", title.strip(), body.strip())


def alert_id(tenant: str, rule_id: str, rule_version: str, article_id: str) -> str:
    """The alert's id, from (tenant, rule id, rule version, article id)."""
    return alert_id_of(alert_id_prefix(tenant, rule_id, rule_version), article_id.encode())


def alert_id_prefix(tenant: str, rule_id: str, rule_version: str) -> bytes:
    """What every alert id of one rule version hashes before the article id.

    A service raising many alerts per rule computes it once: `alert_id(t, r, v, a)` equals
    `alert_id_of(alert_id_prefix(t, r, v), a.encode())`.
    """
    return (_SEP.join(("alert", tenant, rule_id, rule_version)) + _SEP).encode("utf-8")


def alert_id_of(prefix: bytes, article_id: bytes) -> str:
    """The alert id of the rule version `prefix` names and the (UTF-8) article id."""
    return "alert_" + hashlib.sha256(prefix + article_id).hexdigest()[:32]
