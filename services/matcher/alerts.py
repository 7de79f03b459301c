"""Engine matches -> contract records (`MatchRecord`, and later `Alert`). No I/O."""

from __future__ import annotations

from schemas.alert import Evidence, MatchRecord, Snippet
from schemas.identity import alert_id
from services.matcher.engine.matcher import RuleMatch


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
