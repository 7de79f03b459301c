"""Matcher: every rule of every tenant against one article, in one scan. No I/O.

A Matcher is immutable. A changed ruleset builds a new one (`Matcher.updated`), which reuses
the compiled form of every unchanged rule, so the only cost of a change is the automaton
rebuild; a service swaps the new Matcher in between two articles.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Protocol

from schemas.watchlist import WatchlistRule
from services.matcher.engine.automaton import LiteralAutomaton
from services.matcher.engine.compile import CompiledRule, compile_rule
from services.matcher.engine.errors import RuleCompileError, RuleError
from services.matcher.engine.evidence import Snippet, Span, snippet, spans
from services.matcher.engine.normalize import TokenStream, analyze
from services.matcher.engine.stemming import Stemmer

RuleKey = tuple[str, str]  # (tenant, rule id)


class ArticleText(Protocol):
    """What the engine reads of an article (`schemas.article.Article` satisfies it)."""

    @property
    def article_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def language(self) -> str | None: ...
    @property
    def source(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule matched the article; `evidence` is sorted by field (title first), then start."""

    rule: CompiledRule
    evidence: list[Span]
    snippet: Snippet | None

    @property
    def tenant(self) -> str:
        """The rule's tenant."""
        return self.rule.tenant

    @property
    def rule_id(self) -> str:
        """The rule's id."""
        return self.rule.rule.id

    @property
    def rule_version(self) -> str:
        """The rule's version (rules.md section 1)."""
        return self.rule.version


@dataclass(frozen=True, slots=True)
class MatchStats:
    """Where the time went for one article."""

    candidates: int
    hits: int
    scan_ms: float
    verify_ms: float


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The matches for one article, the rules that failed to evaluate, and stats."""

    matches: list[RuleMatch]
    errors: list[RuleError] = field(default_factory=list)
    stats: MatchStats = MatchStats(0, 0, 0.0, 0.0)


def source_allowed(source: str | None, allowed: tuple[str, ...]) -> bool:
    """Suffix match on the source domain: `reuters.com` allows `uk.reuters.com`."""
    if not allowed:
        return True
    if not source:
        return False
    domain = source.lower().strip(".")
    return any(domain == s or domain.endswith("." + s) for s in allowed)


def language_allowed(language: str | None, allowed: frozenset[str]) -> bool:
    """An article of unknown language never passes a language filter."""
    return (
        not allowed
        or (language is not None and language.split("-")[0] in allowed)
        or (language in allowed)
    )


class Matcher:
    """Matches articles against a compiled ruleset. Build with `Matcher.build`."""

    def __init__(self, rules: dict[RuleKey, CompiledRule], stemmer: Stemmer) -> None:
        self._rules = rules
        self._stemmer = stemmer
        ordered = list(rules.values())
        self._ordered = ordered
        triggers: dict[str, list[int]] = {}
        always: list[int] = []
        for index, compiled in enumerate(ordered):
            if compiled.trigger is None:
                always.append(index)
                continue
            for key in compiled.trigger:
                slot = triggers.get(key)
                if slot is None:
                    triggers[key] = [index]
                else:
                    slot.append(index)
        self._triggers = triggers
        self._always = always
        self._automaton = LiteralAutomaton(
            dict.fromkeys(key for compiled in ordered for key in compiled.keys)
        )

    @classmethod
    def build(
        cls, rules: Iterable[tuple[str, WatchlistRule]], stemmer: Stemmer | None = None
    ) -> tuple[Matcher, list[RuleError]]:
        """Compile every (tenant, rule); a rule that fails is left out and reported."""
        return cls({}, stemmer or Stemmer()).updated(rules)

    def updated(
        self,
        upserts: Iterable[tuple[str, WatchlistRule]] = (),
        deletes: Iterable[RuleKey] = (),
    ) -> tuple[Matcher, list[RuleError]]:
        """A new Matcher with rules added, replaced or removed; this one is unchanged.

        An upsert that fails to compile is reported and leaves the rule's previous version
        (if any) in place, so a bad edit never silences a working rule.
        """
        rules = dict(self._rules)
        for key in deletes:
            rules.pop(key, None)
        errors: list[RuleError] = []
        for tenant, rule in upserts:
            previous = rules.get((tenant, rule.id))
            if previous is not None and previous.rule == rule:
                continue
            try:
                rules[(tenant, rule.id)] = compile_rule(tenant, rule, self._stemmer)
            except RuleCompileError as exc:
                errors.append(exc.error)
        return Matcher(rules, self._stemmer), errors

    def __len__(self) -> int:
        return len(self._rules)

    @property
    def literal_count(self) -> int:
        """Distinct literal keys in the automaton."""
        return self._automaton.size

    def rules(self) -> list[CompiledRule]:
        """Every compiled rule."""
        return list(self._ordered)

    def match(self, article: ArticleText) -> MatchResult:
        """Every rule that matches `article`, with evidence; never raises for a bad rule."""
        started = perf_counter()
        texts = (article.title, article.body)
        streams = (analyze(article.title), analyze(article.body))
        stems = None
        if self._automaton.uses_stems:
            stems = (
                self._stemmer.stem_all(streams[0].tokens),
                self._stemmer.stem_all(streams[1].tokens),
            )
        scan = self._automaton.scan(streams, stems)
        candidates: set[int] = set(self._always)
        triggers = self._triggers
        for key in scan.hits:
            slot = triggers.get(key)
            if slot is not None:
                candidates.update(slot)
        scanned = perf_counter()
        matches: list[RuleMatch] = []
        errors: list[RuleError] = []
        ordered = self._ordered
        for index in sorted(candidates):
            compiled = ordered[index]
            if not language_allowed(article.language, compiled.languages) or not source_allowed(
                article.source, compiled.sources
            ):
                continue
            try:
                found = compiled.plan.evaluate(scan)
                if found is not None:
                    matches.append(_rule_match(compiled, found, texts, streams))
            except Exception as exc:  # one broken rule must not fail the article
                errors.append(RuleError(compiled.tenant, compiled.rule_id, "evaluation", repr(exc)))
        done = perf_counter()
        stats = MatchStats(
            candidates=len(candidates),
            hits=len(scan.hits),
            scan_ms=(scanned - started) * 1000,
            verify_ms=(done - scanned) * 1000,
        )
        return MatchResult(matches, errors, stats)


def _rule_match(
    compiled: CompiledRule,
    occurrences: list[tuple[int, int, int]],
    texts: tuple[str, str],
    streams: tuple[TokenStream, TokenStream],
) -> RuleMatch:
    evidence = spans(occurrences, texts, streams)
    first = (
        snippet(evidence[0], texts[0 if evidence[0].field == "title" else 1]) if evidence else None
    )
    return RuleMatch(compiled, evidence, first)
