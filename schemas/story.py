"""Story records: how the matcher's story index survives a restart and is shared by workers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.article import ArticleId
from schemas.common import SCHEMA_VERSION, AwareDatetime, Contract

SHINGLE_HASH_SPACE = 1 << 32


class StoryRecord(Contract):
    """What the story index keeps of one article, to rebuild the index after a restart."""

    schema_version: Literal[1] = SCHEMA_VERSION
    article_id: ArticleId
    source: str | None = None
    at: AwareDatetime
    story_id: str
    ordinal: int = Field(ge=1, description="1 for the article that started the story, then 2...")
    via: str | None = None
    story_sources: list[str] = Field(
        default_factory=list, description="The story's sources as of this article."
    )
    first_for: list[str] = Field(
        default_factory=list,
        description="`tenant/rule_id` of the rules for which this article was the story's first.",
    )
    shingles: str = Field(description="Sorted 32-bit shingle hashes, big-endian, base64.")
    shingle_limit: int = Field(default=SHINGLE_HASH_SPACE, ge=1, le=SHINGLE_HASH_SPACE)
