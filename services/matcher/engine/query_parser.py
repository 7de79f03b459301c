"""Query text -> AST, following the grammar of rules.md section 3. No I/O.

Errors carry the 1-based character position where the parser stopped and what it expected
there, so a rule author can find the mistake in a long query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.matcher.engine.normalize import analyze_terms
from services.matcher.engine.query import (
    And,
    Atom,
    FieldName,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Term,
)

MAX_QUERY_CHARS = 4096
MAX_ATOMS = 256
MAX_NEAR = 100
MAX_PHRASE_TOKENS = 16
MIN_PREFIX_CHARS = 3


class QuerySyntaxError(ValueError):
    """A query that breaks the grammar or a limit; `position` is 1-based."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"position {position}: {message}")
        self.position = position
        self.message = message


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(", ")", "AND", "OR", "NOT", "-", "NEAR", "FIELD", "PHRASE", "WORD", "END"
    text: str
    position: int  # 0-based offset in the query
    value: int = 0  # NEAR distance

    def describe(self) -> str:
        if self.kind == "END":
            return "the end of the query"
        return repr(self.text)


_LEXEME = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<paren>[()])
  | (?P<phrase>"[^"]*")
  | (?P<open_quote>")
  | (?P<near>NEAR/(?P<distance>\d+)(?=[\s()"]|$))
  | (?P<field>(?:title|body):)
  | (?P<word>[^\s()"]+)
    """,
    re.VERBOSE,
)
_OPERATORS = {"AND", "OR", "NOT"}


def _lex(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(query):
        m = _LEXEME.match(query, pos)
        if m is None:  # pragma: no cover - the word alternative matches any other character
            raise QuerySyntaxError(pos + 1, f"unexpected character {query[pos]!r}")
        kind = m.lastgroup
        text = m.group()
        if kind == "open_quote":
            raise QuerySyntaxError(pos + 1, "unterminated phrase: expected a closing '\"'")
        if kind == "paren":
            tokens.append(_Token(text, text, pos))
        elif kind == "phrase":
            tokens.append(_Token("PHRASE", text, pos))
        elif kind == "near":
            tokens.append(_Token("NEAR", text, pos, int(m.group("distance"))))
        elif kind == "field":
            tokens.append(_Token("FIELD", text[:-1], pos))
        elif kind == "word":
            if text in _OPERATORS:
                tokens.append(_Token(text, text, pos))
            elif text.startswith("-") and len(text) > 1:
                # `-word` is NOT word: split the minus off as its own operator.
                tokens.append(_Token("-", "-", pos))
                pos += 1
                continue
            elif text == "-":
                tokens.append(_Token("-", "-", pos))
            else:
                tokens.append(_Token("WORD", text, pos))
        pos = m.end()
    tokens.append(_Token("END", "", len(query)))
    return tokens


_OPERAND_STARTS = ("(", "NOT", "-", "FIELD", "PHRASE", "WORD")


@dataclass(slots=True)
class _Group:
    """One level of parentheses (or the whole query) while it is being read.

    The grammar is recursive but the parser is not: rules.md sets no nesting limit, and a
    4,096-character query can open 2,000 parentheses or stack 1,000 NOTs, far past Python's
    recursion limit. Each open parenthesis pushes a group; its `)` pops it.
    """

    opening: _Token | None  # the "(" that opened it; None for the whole query
    alternatives: list[Node]  # finished AND-groups, joined by OR
    conjuncts: list[Node]  # finished unary terms of the current AND-group
    negations: int = 0  # NOTs read before the next operand
    near_left: tuple[Node, _Token] | None = None  # NEAR's left operand, awaiting the right
    near_token: _Token | None = None

    def close(self) -> Node:
        self.alternatives.append(_join(And, self.conjuncts))
        return _join(Or, self.alternatives)


def _join(kind: type[And] | type[Or], children: list[Node]) -> Node:
    return children[0] if len(children) == 1 else kind(tuple(children))


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = _lex(query)
        self.index = 0
        self.atom_count = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, expected: str) -> QuerySyntaxError:
        token = self.current
        return QuerySyntaxError(
            token.position + 1, f"expected {expected}, found {token.describe()}"
        )

    def parse(self) -> Node:
        stack = [_Group(None, [], [])]
        while True:
            self.read_operand(stack)
            if self.after_operand(stack):
                return stack[0].close()

    def read_operand(self, stack: list[_Group]) -> None:
        """Read one unary term (NOTs, then a NEAR or a primary) into the innermost group."""
        while True:
            group = stack[-1]
            token = self.current
            if token.kind in ("NOT", "-") and group.near_left is None:
                self.advance()
                group.negations += 1
            elif token.kind == "(":
                self.advance()
                stack.append(_Group(token, [], []))
            else:
                self.finish_primary(stack, self.parse_atom(), token)
                return

    def finish_primary(self, stack: list[_Group], node: Node, start: _Token) -> None:
        """A primary is complete: it may be NEAR's left or right operand, or a unary term."""
        group = stack[-1]
        if group.near_left is not None:
            left, left_start = group.near_left
            near = group.near_token
            assert near is not None
            group.near_left = group.near_token = None
            if self.current.kind == "NEAR":
                raise QuerySyntaxError(
                    self.current.position + 1,
                    "NEAR cannot be chained: combine two NEARs with AND",
                )
            node = Near(_near_operand(left, left_start), _near_operand(node, start), near.value)
        elif self.current.kind == "NEAR":
            near = self.advance()
            if near.value > MAX_NEAR:
                raise QuerySyntaxError(near.position + 1, f"NEAR distance must be 0..{MAX_NEAR}")
            group.near_left, group.near_token = (node, start), near
            return
        for _ in range(group.negations):
            node = Not(node)
        group.negations = 0
        group.conjuncts.append(node)

    def after_operand(self, stack: list[_Group]) -> bool:
        """Consume what follows a unary term; True when the whole query has been read."""
        while True:
            group = stack[-1]
            if group.near_left is not None:
                return False  # NEAR's right operand comes next
            kind = self.current.kind
            if kind == "AND":
                self.advance()
                return False
            if kind in _OPERAND_STARTS:
                return False
            if kind == "OR":
                self.advance()
                group.alternatives.append(_join(And, group.conjuncts))
                group.conjuncts = []
                return False
            if group.opening is None:
                if kind != "END":
                    raise self.fail("AND, OR, NEAR/n or the end of the query")
                return True
            if kind != ")":
                raise self.fail("')'")
            self.advance()
            stack.pop()
            self.finish_primary(stack, group.close(), group.opening)

    def parse_atom(self) -> Atom:
        field: FieldName | None = None
        if self.current.kind == "FIELD":
            field = "title" if self.advance().text == "title" else "body"
            if self.current.kind not in ("PHRASE", "WORD"):
                raise self.fail("a term, a prefix or a quoted phrase after the field name")
        token = self.current
        if token.kind == "PHRASE":
            self.advance()
            atom: Atom = _phrase(token, field)
        elif token.kind == "WORD":
            self.advance()
            atom = _prefix(token, field) if token.text.endswith("*") else _term(token, field)
        else:
            raise self.fail("a term, a quoted phrase, a prefix, NOT or '('")
        self.atom_count += 1
        if self.atom_count > MAX_ATOMS:
            raise QuerySyntaxError(token.position + 1, f"more than {MAX_ATOMS} atoms")
        return atom


def _near_operand(node: Node, token: _Token) -> Atom | Or:
    if isinstance(node, Term | Phrase | Prefix):
        return node
    if isinstance(node, Or) and all(isinstance(c, Term | Phrase | Prefix) for c in node.children):
        return node
    raise QuerySyntaxError(
        token.position + 1, "a NEAR operand must be an atom or a parenthesised OR of atoms"
    )


def _phrase(token: _Token, field: FieldName | None) -> Atom:
    words = analyze_terms(token.text[1:-1])
    if not words:
        raise QuerySyntaxError(token.position + 1, "the phrase has no words")
    if len(words) > MAX_PHRASE_TOKENS:
        raise QuerySyntaxError(
            token.position + 1, f"a phrase may hold at most {MAX_PHRASE_TOKENS} tokens"
        )
    return Term(words[0], field) if len(words) == 1 else Phrase(tuple(words), field)


def _prefix(token: _Token, field: FieldName | None) -> Prefix:
    body = token.text[:-1]
    words = analyze_terms(body)
    if "*" in body or len(words) != 1 or len(words[0]) < MIN_PREFIX_CHARS:
        raise QuerySyntaxError(
            token.position + 1,
            f"a prefix is one word of at least {MIN_PREFIX_CHARS} characters followed by '*'",
        )
    return Prefix(words[0], field)


def _term(token: _Token, field: FieldName | None) -> Term:
    words = analyze_terms(token.text)
    if "*" in token.text:
        raise QuerySyntaxError(token.position + 1, "'*' is allowed only at the end of a word")
    if len(words) != 1:
        found = "no word" if not words else f"{len(words)} words ({' '.join(words)})"
        raise QuerySyntaxError(
            token.position + 1,
            f"a term must be exactly one word but {token.text!r} is {found}: quote a phrase",
        )
    return Term(words[0], field)


def parse_query(query: str) -> Node:
    """Parse a query into its AST.

    Raises:
        QuerySyntaxError: the query breaks the grammar or a limit; the error names the
            1-based character position and what was expected there.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(
            MAX_QUERY_CHARS + 1, f"a query is at most {MAX_QUERY_CHARS} characters"
        )
    return _Parser(query).parse()
