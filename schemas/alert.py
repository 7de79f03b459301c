"""Alerts: one per (rule, article) match, with the evidence that made the rule fire."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.article import ArticleId, Language, Url
from schemas.common import SCHEMA_VERSION, AwareDatetime, Contract, Severity, Slug, Tag, TenantId
from schemas.watchlist import FieldName


class Evidence(Contract):
    """One occurrence of a positive atom: `text == article.<field>[start:end]`."""

    field: FieldName
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


class Snippet(Contract):
    """A short excerpt around the first occurrence; `text[match_start:match_end]` is the match."""

    field: FieldName
    text: str
    match_start: int = Field(ge=0)
    match_end: int = Field(ge=0)


class ArticleSummary(Contract):
    """What an alert repeats of its article, so receivers need not look it up."""

    article_id: ArticleId
    url: Url | None = None
    source: str | None = None
    title: str
    language: Language | None = None
    published_at: AwareDatetime | None = None
    received_at: AwareDatetime


class Alert(Contract):
    """A rule matched an article. `alert_id` is deterministic (rules.md section 6)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: str = Field(pattern=r"^alert_[0-9a-f]{32}$")
    tenant: TenantId
    rule_id: Slug
    rule_name: str
    rule_version: str
    severity: Severity
    tags: list[Tag] = Field(default_factory=list)
    article: ArticleSummary
    evidence: list[Evidence]
    snippet: Snippet | None
    story_id: str = Field(description="Shared by syndicated copies and rewrites of one story.")
    first_of_story: bool = Field(description="True for the first alert of this (rule, story).")
    story_sources: list[str] = Field(
        default_factory=list, description="Sources that carried this story so far."
    )
    matched_at: AwareDatetime


class MatchRecord(Contract):
    """What `newsalert match` prints per (rule, article) match: an alert without delivery data."""

    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: str = Field(pattern=r"^alert_[0-9a-f]{32}$")
    tenant: TenantId
    rule_id: Slug
    rule_version: str
    article_id: ArticleId
    severity: Severity
    tags: list[Tag] = Field(default_factory=list)
    evidence: list[Evidence]
    snippet: Snippet | None
