"""Engine matches -> contracts: `MatchRecord` for dry runs, `Alert` records for the stream.

No I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from json.encoder import encode_basestring
from typing import NamedTuple

from newsalert_native import write_alerts
from pydantic_core import to_json

from schemas.alert import ArticleSummary, Evidence, MatchRecord, Snippet
from schemas.article import Article
from schemas.common import SCHEMA_VERSION
from schemas.identity import alert_id, alert_id_of, alert_id_prefix
from services.common.topics import record_key
from services.matcher.engine.compile import CompiledRule
from services.matcher.engine.evidence import Quoted
from services.matcher.engine.matcher import MatchResult, RuleMatch


def evidence_of(match: RuleMatch) -> tuple[list[Evidence], Snippet | None]:
    """The match's evidence and snippet as contract models."""
    evidence = [
        Evidence(field=s.field, start=s.start, end=s.end, text=s.text) for s in match.evidence
    ]
    snippet = None
    if match.snippet is not None:
        snippet = Snippet(
            field=match.snippet.field,
            text=match.snippet.text,
            match_start=match.snippet.match_start,
            match_end=match.snippet.match_end,
        )
    return evidence, snippet


def match_record(match: RuleMatch, article_id: str) -> MatchRecord:
    """The dry-run record of one match, with its deterministic alert id."""
    evidence, snippet = evidence_of(match)
    rule = match.rule.rule
    return MatchRecord(
        alert_id=alert_id(match.tenant, rule.id, match.rule_version, article_id),
        tenant=match.tenant,
        rule_id=rule.id,
        rule_version=match.rule_version,
        article_id=article_id,
        severity=rule.severity,
        tags=list(rule.tags),
        evidence=evidence,
        snippet=snippet,
    )


def summary_of(article: Article) -> ArticleSummary:
    """What an alert repeats of its article."""
    return ArticleSummary(
        article_id=article.article_id,
        url=article.url,
        source=article.source,
        title=article.title,
        language=article.language,
        published_at=article.published_at,
        received_at=article.received_at,
    )


class AlertRecord(NamedTuple):
    """One alert as the alerts topic carries it: key `tenant/rule_id`, value the Alert JSON."""

    key: bytes
    value: bytes
    alert_id: str
    severity: str


# A JSON string literal, escaped as pydantic's serializer does: quotes, backslashes and
# control characters; everything else as is (contracts refuse NUL and lone surrogates).
# json.dumps(value, ensure_ascii=False) without its per-call overhead.
_json: Callable[[str], str] = encode_basestring


class RuleParts(NamedTuple):
    """What every alert of one compiled rule repeats, prepared once."""

    rule: CompiledRule  # held, so that the id the memo is keyed by stays this rule's
    key: bytes  # the record key, `tenant/rule_id`
    fields: str  # `,"tenant":...,"tags":[...]`: the rule's part of an alert, in model order
    id_prefix: bytes  # see `schemas.identity.alert_id_prefix`
    severity: str
    rule_key: str  # `tenant/rule_id`: what the story index keeps first-of-story claims by


class RuleFields:
    """The `RuleParts` of each compiled rule, written once per rule version.

    A compiled rule stands for one version of one rule, so an edited rule gets fresh parts.
    Keyed by object identity (hashing a rule by value costs more than the memo saves), and
    bounded against a ruleset that churns for ever.
    """

    def __init__(self, max_entries: int = 1 << 18) -> None:
        self._memo: dict[int, RuleParts] = {}
        self._max_entries = max_entries

    def of(self, compiled: CompiledRule) -> RuleParts:
        """The parts of `compiled`'s alerts."""
        parts = self._memo.get(id(compiled))
        if parts is None or parts.rule is not compiled:
            if len(self._memo) >= self._max_entries:
                self._memo.clear()
            tenant, rule, version = compiled.tenant, compiled.rule, compiled.version
            rule_key = record_key(tenant, rule.id)
            parts = self._memo[id(compiled)] = RuleParts(
                compiled,
                rule_key.encode(),
                f',"tenant":{_json(tenant)},"rule_id":{_json(rule.id)}'
                f',"rule_name":{_json(rule.name)},"rule_version":{_json(version)}'
                f',"severity":{_json(rule.severity.value)}'
                f',"tags":[{",".join(map(_json, rule.tags))}]',
                alert_id_prefix(tenant, rule.id, version),
                rule.severity.value,
                rule_key,
            )
        return parts


def _quoted_json(quoted: Quoted) -> str:
    """`[evidence...],"snippet":{...}`: an alert's evidence and snippet, as JSON."""
    evidence = ",".join(
        f'{{"field":"{s.field}","start":{s.start},"end":{s.end},"text":{_json(s.text)}}}'
        for s in quoted.spans
    )
    snippet = quoted.snippet
    if snippet is None:
        return f'{evidence}],"snippet":null'
    return (
        f'{evidence}],"snippet":{{"field":"{snippet.field}","text":{_json(snippet.text)}'
        f',"match_start":{snippet.match_start},"match_end":{snippet.match_end}}}'
    )


class ArticleAlerts:
    """The alerts of one article, written straight to JSON.

    An article at 10k rules raises about fifty alerts; building and serialising a validated
    model for each cost more than all the matching. Everything the alerts share (the article
    summary, the story, the time) is serialised once, through the contract models, into the
    frame every alert of the article shares; each rule's fields once per rule version. The
    native writer (`newsalert_native.write_alerts`) then quotes each match's evidence and joins
    the pieces; `_write` is its definition, and writes the alerts of a match the native core
    did not scan. `tests/unit/matcher/test_alerts.py` holds both equal, byte for byte, to
    `Alert(...).model_dump_json()`.
    """

    def __init__(
        self,
        article: Article,
        *,
        rule_fields: RuleFields,
        story_id: str,
        story_sources: list[str],
        matched_at: datetime,
    ) -> None:
        self._article_id = article.article_id.encode()
        self._rule_fields = rule_fields
        summary = summary_of(article).model_dump_json()
        sources = ",".join(map(_json, story_sources))
        self._head = f'{{"schema_version":{SCHEMA_VERSION},"alert_id":"'
        self._story = f',"story_id":{_json(story_id)},"first_of_story":'
        self._tail = f',"story_sources":[{sources}],"matched_at":{to_json(matched_at).decode()}}}'
        self._article = f',"article":{summary},"evidence":['

    def records(
        self, result: MatchResult, first_of_story: Callable[[list[str]], list[bool]]
    ) -> list[AlertRecord]:
        """The alerts of every match of `result`, in rule order.

        `first_of_story` is asked once, with the matched rules' keys (`tenant/rule_id`, in
        rule order), whether this article is its story's first to match each of them.
        """
        parts = list(map(self._rule_fields.of, result.rules))
        firsts = first_of_story([rule.rule_key for rule in parts])
        native = result.native_evidence()
        if native is None:
            return [
                self.record(match, first_of_story=first)
                for match, first in zip(result.matches, firsts, strict=True)
            ]
        writer, scan, indices = native
        frame = (self._head, self._article, self._story, self._tail)
        values, ids = write_alerts(writer, scan, indices, parts, firsts, self._article_id, frame)
        return [
            AlertRecord(rule.key, value, identifier, rule.severity)
            for rule, value, identifier in zip(parts, values, ids, strict=True)
        ]

    def record(self, match: RuleMatch, *, first_of_story: bool) -> AlertRecord:
        """The alert of one match; its id depends only on rule version and article."""
        evidence = match.evidence_json()
        if evidence is None:
            evidence = _quoted_json(match.quoted)
        return self._write(self._rule_fields.of(match.rule), evidence, first_of_story)

    def _write(self, parts: RuleParts, evidence: str, first_of_story: bool) -> AlertRecord:
        identifier = alert_id_of(parts.id_prefix, self._article_id)
        first = "true" if first_of_story else "false"
        value = (
            f'{self._head}{identifier}"{parts.fields}'
            f"{self._article}{evidence}{self._story}{first}{self._tail}"
        )
        return AlertRecord(parts.key, value.encode("utf-8"), identifier, parts.severity)
