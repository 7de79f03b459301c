"""A slow, obviously correct matcher: every rule, token by token. The test oracle. No I/O.

It shares only the text analysis and the query parser with the fast engine (they *are* the
rules.md contract), and re-implements everything else plainly: no literal index, no candidate
selection, no compiled plan. The conformance suite runs every case through both.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.watchlist import WatchlistRule
from services.matcher.engine.compile import CompiledRule, compile_rule, rule_ast
from services.matcher.engine.errors import RuleCompileError, RuleError
from services.matcher.engine.matcher import (
    ArticleText,
    ArticleView,
    MatchResult,
    MatchStats,
    RuleMatch,
    language_allowed,
    source_allowed,
)
from services.matcher.engine.normalize import TokenStream, analyze
from services.matcher.engine.plan import Occurrence
from services.matcher.engine.query import (
    And,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Term,
    unwrap_negations,
)
from services.matcher.engine.stemming import Stemmer

_FIELDS = {"title": 0, "body": 1}


class ReferenceMatcher:
    """Evaluates every rule's AST directly over the article's tokens."""

    def __init__(self, rules: Iterable[tuple[str, WatchlistRule]]) -> None:
        self._stemmer = Stemmer()
        self._rules: list[tuple[CompiledRule, Node]] = []
        self.errors: list[RuleError] = []
        for tenant, rule in rules:
            try:
                # compile_rule only supplies identity (version, metadata); its plan is unused.
                self._rules.append(
                    (compile_rule(tenant, rule, self._stemmer), rule_ast(tenant, rule))
                )
            except RuleCompileError as exc:
                self.errors.append(exc.error)

    def match(self, article: ArticleText) -> MatchResult:
        """Every matching rule with its evidence."""
        texts = (article.title, article.body)
        streams = (analyze(article.title), analyze(article.body))
        # The view quotes occurrences; it is given no scan, since this matcher never scans.
        view = ArticleView(texts, streams)
        matches = []
        for compiled, ast in self._rules:
            if not language_allowed(article.language, compiled.languages):
                continue
            if not source_allowed(article.source, compiled.sources):
                continue
            found = _Evaluation(compiled.rule, streams, self._stemmer).run(ast)
            if found is not None:
                matches.append(RuleMatch(compiled, quoted=view.quote(found)))
        stats = MatchStats(len(self._rules), 0, 0.0, 0.0)
        return MatchResult([m.rule for m in matches], stats, matches=matches)


class _Evaluation:
    def __init__(
        self, rule: WatchlistRule, streams: tuple[TokenStream, TokenStream], stemmer: Stemmer
    ) -> None:
        self.rule = rule
        self.streams = streams
        self.stemmer = stemmer

    def run(self, node: Node) -> list[Occurrence] | None:
        if isinstance(node, Term | Phrase | Prefix):
            return self.find(node) or None
        if isinstance(node, And):
            evidence: list[Occurrence] = []
            for child in node.children:
                found = self.run(child)
                if found is None:
                    return None
                evidence += found
            return evidence
        if isinstance(node, Or):
            results = [self.run(child) for child in node.children]
            held = [r for r in results if r is not None]
            return [o for r in held for o in r] if held else None
        if isinstance(node, Not):
            odd, inner = unwrap_negations(node)
            holds = self.run(inner) is not None
            return [] if holds != odd else None
        return self.near(node)

    def near(self, node: Near) -> list[Occurrence] | None:
        lefts = self.operand(node.left)
        rights = self.operand(node.right)
        used: set[Occurrence] = set()
        for a in lefts:
            for b in rights:
                if a[0] != b[0]:
                    continue
                gap = b[1] - a[2] if a[2] <= b[1] else a[1] - b[2] if b[2] <= a[1] else -1
                if 0 <= gap <= node.distance:
                    used.update((a, b))
        return sorted(used) or None

    def operand(self, node: Term | Phrase | Prefix | Or) -> list[Occurrence]:
        if isinstance(node, Or):
            return [o for child in node.children for o in self.find(child)]  # type: ignore[arg-type]
        return self.find(node)

    def fields(self, node: Term | Phrase | Prefix) -> list[int]:
        names = [node.field] if node.field else self.rule.fields
        return sorted(_FIELDS[name] for name in names)

    def find(self, node: Term | Phrase | Prefix) -> list[Occurrence]:
        found: list[Occurrence] = []
        for field in self.fields(node):
            tokens = self.streams[field].tokens
            if isinstance(node, Prefix):
                found += [
                    (field, i, i + 1) for i, t in enumerate(tokens) if t.startswith(node.prefix)
                ]
                continue
            wanted = [node.token] if isinstance(node, Term) else list(node.tokens)
            if self.rule.stem:
                wanted = [self.stemmer[w] for w in wanted]
                tokens = [self.stemmer[t] for t in tokens]
            n = len(wanted)
            found += [
                (field, i, i + n) for i in range(len(tokens) - n + 1) if tokens[i : i + n] == wanted
            ]
        return found
