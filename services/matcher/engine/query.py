"""The query AST of rules.md section 3: immutable nodes, analysed tokens in the atoms. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldName = Literal["title", "body"]


@dataclass(frozen=True, slots=True)
class Term:
    """One analysed token; matches a token equal to it."""

    token: str
    field: FieldName | None = None


@dataclass(frozen=True, slots=True)
class Phrase:
    """1..16 analysed tokens; matches them as consecutive tokens."""

    tokens: tuple[str, ...]
    field: FieldName | None = None


@dataclass(frozen=True, slots=True)
class Prefix:
    """Matches any token that starts with `prefix` (never stemmed)."""

    prefix: str
    field: FieldName | None = None


Atom = Term | Phrase | Prefix


@dataclass(frozen=True, slots=True)
class And:
    """Every child holds."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one child holds."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not hold."""

    child: Node


@dataclass(frozen=True, slots=True)
class Near:
    """An occurrence of `left` and one of `right`, same field, at most `distance` tokens apart.

    Each operand is an atom or an `Or` of atoms (rules.md section 3).
    """

    left: Atom | Or
    right: Atom | Or
    distance: int


Node = Term | Phrase | Prefix | And | Or | Not | Near


def unwrap_negations(node: Not) -> tuple[bool, Node]:
    """A chain of NOTs as (odd?, the first node below them), walked without recursion.

    A query may stack hundreds of NOTs and rules.md sets no depth limit, so anything that
    descends the tree must not spend a stack frame on each of them.
    """
    odd = False
    inner: Node = node
    while isinstance(inner, Not):
        odd = not odd
        inner = inner.child
    return odd, inner


def atoms(node: Node, *, positive_only: bool = False) -> list[Atom]:
    """Every atom below `node`, left to right; with `positive_only`, none under a NOT."""
    match node:
        case Term() | Phrase() | Prefix():
            return [node]
        case And(children) | Or(children):
            return [a for child in children for a in atoms(child, positive_only=positive_only)]
        case Not():
            return [] if positive_only else atoms(unwrap_negations(node)[1])
        case Near(left, right, _):
            return atoms(left, positive_only=positive_only) + atoms(
                right, positive_only=positive_only
            )
