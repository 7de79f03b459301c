"""Articles: what a client sends (`ArticleIn`) and what flows on the articles topic (`Article`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.common import SCHEMA_VERSION, AwareDatetime, CleanText, Contract

MAX_TEXT_CHARS = 512 * 1024

ArticleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")]
Url = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s]+$")]


class ArticleIn(Contract):
    """An article as a client submits it. Only `title` or `body` text is required."""

    id: ArticleId | None = Field(
        default=None, description="The client's own id; derived from url or text when absent."
    )
    url: Url | None = None
    source: CleanText | None = Field(
        default=None,
        max_length=253,
        description="Source domain (e.g. reuters.com); taken from url when absent.",
    )
    title: CleanText = Field(default="", max_length=2000)
    body: CleanText = Field(default="", max_length=MAX_TEXT_CHARS)
    language: Language | None = Field(default=None, description="ISO 639 code, e.g. en.")
    published_at: AwareDatetime | None = None


class Article(Contract):
    """An accepted article on the articles topic. Articles belong to no tenant."""

    schema_version: Literal[1] = SCHEMA_VERSION
    article_id: ArticleId
    url: Url | None = None
    source: CleanText | None = Field(default=None, max_length=253)
    title: CleanText = Field(default="", max_length=2000)
    body: CleanText = Field(default="", max_length=MAX_TEXT_CHARS)
    language: Language | None = None
    published_at: AwareDatetime | None = None
    received_at: AwareDatetime


class RejectedRecord(Contract):
    """A record a consumer could not process (not an article, or one whose alerts are too
    large to produce), kept with the reason instead of being dropped."""

    schema_version: Literal[1] = SCHEMA_VERSION
    topic: str
    partition: int
    offset: int
    key: str | None = Field(description="The record key, decoded as UTF-8 with replacement.")
    value_b64: str = Field(
        description="The raw record value, base64; empty if too large to keep here (the "
        "reason then says where it is)."
    )
    reason: str
    rejected_at: AwareDatetime
