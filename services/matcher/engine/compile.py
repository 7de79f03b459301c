"""WatchlistRule -> CompiledRule: the plan to verify, and the literal keys that trigger it.

No I/O. A literal key is what the native core looks for in an article's token stream:
tokens joined by a separator, framed by separators so it matches whole tokens only. Raw and
stemmed streams use different separators; the native core reads the framing to tell a
term or phrase, a prefix and a stemmed sequence apart.

A `CompiledRule` is made by the native core (`newsalert_native.CompiledRule`): the rule's
tenant, `rule`, `rule_id`, `version`, `languages` and `sources` for Python, and for the core
its plan, its literal keys and its trigger, keys such that the rule can only match an article
where one of them occurs (none for e.g. `a OR NOT b`, which is checked on every article). A
rule that is an alias list over every field, with no filter, is decided by its trigger alone
and never evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable

from newsalert_native import CompiledRule as CompiledRule  # re-exported: engine modules name it
from newsalert_native import RuleCompiler as NativeRuleCompiler

from schemas.watchlist import WatchlistRule
from services.matcher.engine.errors import RuleCompileError, RuleError
from services.matcher.engine.normalize import ASCII_TABLE, analyze_terms
from services.matcher.engine.plan import BODY, BOTH, TITLE, All, AnyOf, Lit, Neg, Plan, Within
from services.matcher.engine.query import (
    And,
    Atom,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Term,
    atoms,
    unwrap_negations,
)
from services.matcher.engine.query_parser import MAX_PHRASE_TOKENS, QuerySyntaxError, parse_query
from services.matcher.engine.stemming import Stemmer

RAW_SEP = " "
STEM_SEP = "\x01"
_FIELD_MASKS = {"title": TITLE, "body": BODY}


def raw_key(tokens: tuple[str, ...]) -> str:
    """The key of a term or phrase compared with unstemmed tokens."""
    return RAW_SEP + RAW_SEP.join(tokens) + RAW_SEP


def stem_key(stems: tuple[str, ...]) -> str:
    """The key of a term or phrase compared with stemmed tokens."""
    return STEM_SEP + STEM_SEP.join(stems) + STEM_SEP


def prefix_key(prefix: str) -> str:
    """The key of a prefix: a token start, open at the end."""
    return RAW_SEP + prefix


def rule_ast(tenant: str, rule: WatchlistRule) -> Node:
    """The rule as one query AST: `any` as an OR of phrases, `none` as AND NOT.

    Raises:
        RuleCompileError: a phrase or the query breaks rules.md section 3.
    """
    if rule.query is not None:
        try:
            positive: Node = parse_query(rule.query)
        except QuerySyntaxError as exc:
            raise RuleCompileError(
                RuleError(tenant, rule.id, "query", exc.message, exc.position)
            ) from exc
        if not atoms(positive, positive_only=True):
            raise RuleCompileError(
                RuleError(
                    tenant,
                    rule.id,
                    "query",
                    "the query has no positive term, so it could never match; "
                    "add a term that must occur",
                    1,
                )
            )
    else:
        positive = _phrase_or(tenant, rule.id, "any", rule.any or [])
    if not rule.none:
        return positive
    return And((positive, Not(_phrase_or(tenant, rule.id, "none", rule.none))))


def _phrase_or(tenant: str, rule_id: str, where: str, phrases: list[str]) -> Node:
    alternatives: list[Node] = []
    for index, text in enumerate(phrases):
        tokens = analyze_terms(text)
        if not tokens or len(tokens) > MAX_PHRASE_TOKENS:
            problem = "has no words" if not tokens else f"has more than {MAX_PHRASE_TOKENS} words"
            raise RuleCompileError(
                RuleError(tenant, rule_id, f"{where}[{index}]", f"the phrase {text!r} {problem}")
            )
        alternatives.append(Term(tokens[0]) if len(tokens) == 1 else Phrase(tuple(tokens)))
    return alternatives[0] if len(alternatives) == 1 else Or(tuple(alternatives))


class _PlanBuilder:
    def __init__(self, rule: WatchlistRule, stemmer: Stemmer) -> None:
        self.stem = rule.stem
        self.stemmer = stemmer
        self.default_mask = sum(_FIELD_MASKS[f] for f in set(rule.fields))
        self.keys: dict[str, None] = {}

    def lit(self, atom: Atom) -> Lit:
        match atom:
            case Prefix(prefix):
                key = prefix_key(prefix)
            case Term(token):
                key = self._key((token,))
            case Phrase(tokens):
                key = self._key(tokens)
        self.keys[key] = None
        mask = _FIELD_MASKS[atom.field] if atom.field else self.default_mask
        return Lit(key, mask)

    def _key(self, tokens: tuple[str, ...]) -> str:
        if self.stem:
            return stem_key(tuple(self.stemmer[t] for t in tokens))
        return raw_key(tokens)

    def plan(self, node: Node) -> Plan:
        match node:
            case Term() | Phrase() | Prefix():
                return self.lit(node)
            case And(children):
                return All(tuple(self.plan(c) for c in children))
            case Or(children):
                return AnyOf(tuple(self.plan(c) for c in children))
            case Not():
                # NOT^k(x) decides and reports like NOT(x) for odd k, NOT(NOT(x)) for even k.
                odd, inner = unwrap_negations(node)
                negated = Neg(self.plan(inner))
                return negated if odd else Neg(negated)
            case Near(left, right, distance):
                return Within(self.operand(left), self.operand(right), distance)

    def operand(self, node: Atom | Or) -> tuple[Lit, ...]:
        if isinstance(node, Or):
            return tuple(self.lit(c) for c in node.children)  # type: ignore[arg-type]
        return (self.lit(node),)


def trigger_keys(plan: Plan) -> tuple[str, ...] | None:
    """Keys one of which must occur for `plan` to hold, or None when there are none.

    For an AND (and NEAR) one child's keys suffice: the child with the fewest keys, longer
    keys breaking ties, since long keys are rarer in text and so yield fewer candidates.
    """
    match plan:
        case Lit(key=key):
            return (key,)
        case AnyOf(children=children):
            found: list[str] = []
            for child in children:
                keys = trigger_keys(child)
                if keys is None:
                    return None
                found += keys
            return tuple(dict.fromkeys(found))
        case All(children=children):
            options = [k for k in map(trigger_keys, children) if k is not None]
            return min(options, key=_selectivity) if options else None
        case Within(left=left, right=right):
            sides = [tuple(lit.key for lit in left), tuple(lit.key for lit in right)]
            return min(sides, key=_selectivity)
        case Neg():
            return None
    raise TypeError(plan)  # pragma: no cover - every Plan type is handled above


def _selectivity(keys: tuple[str, ...]) -> tuple[int, int]:
    return (len(keys), -min(map(len, keys)))


def _is_alias_list(plan: Plan) -> bool:
    if isinstance(plan, Lit):
        return plan.mask == BOTH
    return isinstance(plan, AnyOf) and all(
        isinstance(c, Lit) and c.mask == BOTH for c in plan.children
    )


def compile_rule(tenant: str, rule: WatchlistRule, stemmer: Stemmer) -> CompiledRule:
    """Compile one rule: the definition of compiling, which `RuleCompiler` speeds up.

    Raises:
        RuleCompileError: the rule breaks rules.md; the error names where and why.
    """
    builder = _PlanBuilder(rule, stemmer)
    plan = builder.plan(rule_ast(tenant, rule))
    languages = sorted(set(rule.languages))
    sources = [s.lower().strip(".") for s in rule.sources]
    return CompiledRule(
        tenant,
        rule,
        rule.version(),
        plan,
        trigger_keys(plan),
        list(builder.keys),
        _is_alias_list(plan) and not languages and not sources,
        languages,
        sources,
    )


class RuleCompiler:
    """Compiles rules, most of them natively.

    Python spends about 100 µs per rule on the steps above, so a first build of 100k rules
    would take seconds. The native core repeats them (services/matcher/native/src/compile.rs)
    for every rule whose texts are ASCII and which its query reader accepts; `compile_rule`
    compiles the rest, and is the one that reports a bad rule. Both analyse with this
    module's table and stem with the same `Stemmer`, and a differential test holds them to
    equal results.
    """

    def __init__(self, stemmer: Stemmer) -> None:
        self._stemmer = stemmer
        self._native = NativeRuleCompiler(ASCII_TABLE, stemmer.cache)

    @property
    def stemmer(self) -> Stemmer:
        """The stemmer rules are compiled with, which articles must be stemmed with too."""
        return self._stemmer

    def compile_into(
        self,
        rules: dict[tuple[str, str], CompiledRule],
        upserts: Iterable[tuple[str, WatchlistRule]],
    ) -> list[RuleError]:
        """Compile each (tenant, rule) of `upserts` into `rules`, keyed (tenant, rule id).

        A rule equal to the one already held is left as it is. Returns the errors of the
        rules that do not compile; their keys keep their previous rules, so a bad edit
        never silences a working rule.
        """
        return self._native.compile_into(rules, upserts, self._fallback)

    def _fallback(self, tenant: str, rule: WatchlistRule) -> CompiledRule | RuleError:
        try:
            return compile_rule(tenant, rule, self._stemmer)
        except RuleCompileError as exc:
            return exc.error

    def compile(self, tenant: str, rule: WatchlistRule) -> CompiledRule:
        """Compile one rule, as `compile_rule` does.

        Raises:
            RuleCompileError: the rule breaks rules.md; the error names where and why.
        """
        (compiled,) = self._native.compile([(tenant, rule)])
        return compiled or compile_rule(tenant, rule, self._stemmer)
