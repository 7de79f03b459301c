"""Engine matches -> contracts: `MatchRecord` for dry runs, `Alert` for the stream. No I/O."""

from __future__ import annotations

from datetime import datetime

from schemas.alert import Alert, ArticleSummary, Evidence, MatchRecord, Snippet
from schemas.article import Article
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


def build_alert(
    match: RuleMatch,
    article: Article,
    *,
    summary: ArticleSummary | None = None,
    story_id: str,
    first_of_story: bool,
    story_sources: list[str],
    matched_at: datetime,
) -> Alert:
    """The alert for one (rule, article) match; its id depends only on rule and article.

    `summary` (`summary_of(article)`) may be passed in, to share one among an article's alerts.
    """
    evidence, snippet = evidence_of(match)
    rule = match.rule.rule
    return Alert(
        alert_id=alert_id(match.tenant, rule.id, match.rule_version, article.article_id),
        tenant=match.tenant,
        rule_id=rule.id,
        rule_name=rule.name,
        rule_version=match.rule_version,
        severity=rule.severity,
        tags=list(rule.tags),
        article=summary or summary_of(article),
        evidence=evidence,
        snippet=snippet,
        story_id=story_id,
        first_of_story=first_of_story,
        story_sources=story_sources,
        matched_at=matched_at,
    )
