"""Evaluate a compiled rule plan over the literal occurrences of one article. No I/O.

`holds` decides whether a plan matches, from the set of keys present wherever it can, and
from token positions only where it must (NEAR, field-restricted atoms). A plan node's
`evaluate` returns None when it does not hold, else the occurrences that make
it hold (possibly none, for a NOT). Those occurrences are the match's evidence: only
branches that hold contribute, and for NEAR only occurrences that take part in a pair within
the distance, so evidence says why the rule fired.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Protocol

# An occurrence: (field index, first token, end token exclusive); field 0 is title, 1 body.
Occurrence = tuple[int, int, int]
FIELD_NAMES = ("title", "body")
TITLE, BODY = 1, 2
BOTH = TITLE | BODY
MAX_PHRASE_TOKENS = 16


class Occurrences(Protocol):
    """Where each literal key occurs in the article being matched."""

    hits: frozenset[str]

    def occurrences(self, key: str) -> list[Occurrence]:
        """Occurrences of `key`, sorted by (field, first token)."""
        ...


class Lit:
    """A literal (term, phrase, prefix) restricted to a set of fields."""

    __slots__ = ("key", "mask")

    def __init__(self, key: str, mask: int) -> None:
        self.key = key
        self.mask = mask

    def holds(self, ctx: Occurrences) -> bool:
        """Whether the literal occurs in an allowed field."""
        if self.key not in ctx.hits:
            return False
        if self.mask == BOTH:
            return True
        return any((1 << o[0]) & self.mask for o in ctx.occurrences(self.key))

    def evaluate(self, ctx: Occurrences) -> list[Occurrence] | None:
        """The occurrences in allowed fields, or None if there are none."""
        found = ctx.occurrences(self.key)
        if self.mask != BOTH:
            found = [o for o in found if (1 << o[0]) & self.mask]
        return found or None


class All:
    """Every child holds; evidence of all of them."""

    __slots__ = ("children",)

    def __init__(self, children: tuple[Plan, ...]) -> None:
        self.children = children

    def holds(self, ctx: Occurrences) -> bool:
        """Whether every child holds."""
        return all(child.holds(ctx) for child in self.children)

    def evaluate(self, ctx: Occurrences) -> list[Occurrence] | None:
        """None as soon as one child fails."""
        evidence: list[Occurrence] = []
        for child in self.children:
            found = child.evaluate(ctx)
            if found is None:
                return None
            evidence += found
        return evidence


class AnyOf:
    """At least one child holds; evidence of every child that holds."""

    __slots__ = ("children",)

    def __init__(self, children: tuple[Plan, ...]) -> None:
        self.children = children

    def holds(self, ctx: Occurrences) -> bool:
        """Whether some child holds."""
        return any(child.holds(ctx) for child in self.children)

    def evaluate(self, ctx: Occurrences) -> list[Occurrence] | None:
        """None only when no child holds."""
        evidence: list[Occurrence] | None = None
        for child in self.children:
            found = child.evaluate(ctx)
            if found is not None:
                evidence = found if evidence is None else evidence + found
        return evidence


class Neg:
    """The child does not hold; contributes no evidence."""

    __slots__ = ("child",)

    def __init__(self, child: Plan) -> None:
        self.child = child

    def holds(self, ctx: Occurrences) -> bool:
        """Whether the child fails."""
        return not self.child.holds(ctx)

    def evaluate(self, ctx: Occurrences) -> list[Occurrence] | None:
        """An empty list (true) when the child fails, else None."""
        return [] if self.child.evaluate(ctx) is None else None


class Within:
    """NEAR/n: an occurrence on each side, same field, no overlap, at most n tokens between."""

    __slots__ = ("distance", "left", "right")

    def __init__(self, left: tuple[Lit, ...], right: tuple[Lit, ...], distance: int) -> None:
        self.left = left
        self.right = right
        self.distance = distance

    def holds(self, ctx: Occurrences) -> bool:
        """Whether some pair lies within the distance."""
        hits = ctx.hits
        if not any(lit.key in hits for lit in self.left):
            return False
        if not any(lit.key in hits for lit in self.right):
            return False
        return self.evaluate(ctx) is not None

    def evaluate(self, ctx: Occurrences) -> list[Occurrence] | None:
        """The occurrences that take part in at least one pair within the distance."""
        lefts = _gather(self.left, ctx)
        if not lefts:
            return None
        rights = _gather(self.right, ctx)
        if not rights:
            return None
        rights.sort()
        # Keys of `rights` for bisecting on (field, first token).
        keys = [(f, s) for f, s, _ in rights]
        d = self.distance
        used_left: list[Occurrence] = []
        used_right: set[Occurrence] = set()
        for occ in lefts:
            field, start, end = occ
            # Right-hand occurrences that start after `occ` ends, within d tokens ...
            lo = bisect_left(keys, (field, end))
            hi = bisect_right(keys, (field, end + d))
            paired = rights[lo:hi]
            # ... or end before `occ` starts, within d tokens (a phrase spans <= 16 tokens).
            lo = bisect_left(keys, (field, start - d - MAX_PHRASE_TOKENS))
            hi = bisect_right(keys, (field, start - 1))
            paired += [r for r in rights[lo:hi] if start - d <= r[2] <= start]
            if paired:
                used_left.append(occ)
                used_right.update(paired)
        if not used_left:
            return None
        return used_left + sorted(used_right)


def _gather(lits: tuple[Lit, ...], ctx: Occurrences) -> list[Occurrence]:
    found: list[Occurrence] = []
    for lit in lits:
        more = lit.evaluate(ctx)
        if more:
            found += more
    return found


Plan = Lit | All | AnyOf | Neg | Within
