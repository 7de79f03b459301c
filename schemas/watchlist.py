"""Watchlists and their rules, exactly as ../shared/design/rules.md section 1 defines them.

Pydantic checks the shape of a rule here; the query grammar itself is checked by the matcher
engine (`services.matcher.engine`), which reports the character position of an error.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from schemas.common import (
    SCHEMA_VERSION,
    AwareDatetime,
    CleanText,
    Contract,
    Severity,
    Slug,
    Tag,
    TenantId,
)

MAX_QUERY_CHARS = 4096
MAX_PHRASES = 1000

FieldName = Literal["title", "body"]
Phrase = Annotated[CleanText, StringConstraints(min_length=1, max_length=1000)]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")]
Domain = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")
]


class WatchlistRule(Contract):
    """One rule: `any` phrases or a Boolean `query`, with optional exclusions and filters."""

    id: Slug
    name: CleanText = Field(min_length=1, max_length=200)
    severity: Severity = Severity.MEDIUM
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    any: list[Phrase] | None = Field(default=None, min_length=1, max_length=MAX_PHRASES)
    query: CleanText | None = Field(default=None, min_length=1, max_length=MAX_QUERY_CHARS)
    none: list[Phrase] = Field(default_factory=list, max_length=MAX_PHRASES)
    stem: bool = False
    fields: list[FieldName] = Field(default=["title", "body"], min_length=1, max_length=2)
    languages: list[Language] = Field(default_factory=list)
    sources: list[Domain] = Field(default_factory=list)

    @model_validator(mode="after")
    def _exactly_one_form(self) -> WatchlistRule:
        if (self.any is None) == (self.query is None):
            raise ValueError("a rule needs exactly one of `any` (a list of phrases) or `query`")
        return self

    @field_validator("fields")
    @classmethod
    def _distinct_fields(cls, value: list[FieldName]) -> list[FieldName]:
        if len(set(value)) != len(value):
            raise ValueError("fields must not repeat")
        return value

    def version(self) -> str:
        """A hash of what decides matching, so that changing it changes alert identity.

        Covers `any`, `query`, `none`, `stem`, `fields`, `languages` and `sources`, normalised
        (order and duplicates of list items do not count). `name`, `severity` and `tags` are
        presentation: editing them keeps the version, so a re-processed article does not
        produce a second alert for an unchanged match.
        """
        definition = {
            "any": sorted(set(self.any)) if self.any is not None else None,
            "query": self.query.strip() if self.query is not None else None,
            "none": sorted(set(self.none)),
            "stem": self.stem,
            "fields": sorted(self.fields),
            "languages": sorted(set(self.languages)),
            "sources": sorted({s.lower().strip(".") for s in self.sources}),
        }
        canonical = json.dumps(definition, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class Watchlist(Contract):
    """A watchlist file: one tenant's rules, ids unique within it."""

    tenant: TenantId = "default"
    rules: list[WatchlistRule] = Field(max_length=100_000)

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[WatchlistRule]) -> list[WatchlistRule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} appears more than once")
            seen.add(rule.id)
        return rules


class RuleRecord(Contract):
    """A rule as stored on the compacted rules topic, keyed `tenant/rule_id`."""

    schema_version: Literal[1] = SCHEMA_VERSION
    tenant: TenantId
    rule: WatchlistRule
    version: str = Field(pattern=r"^[0-9a-f]{16}$")
    updated_at: AwareDatetime
