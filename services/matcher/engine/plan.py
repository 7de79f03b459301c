"""A compiled rule's plan: what must occur where, as a small tree of literals. No I/O.

Plans are built here, in Python, by compile.py, and evaluated by the native core
(`services/matcher/native`, module `newsalert_native`), which reads each node's `KIND` and
fields once per rule version. The semantics it implements, node by node:

- `Lit`: the key occurs in an allowed field; its evidence is those occurrences.
- `All`: every child holds; evidence of all of them.
- `AnyOf`: at least one child holds; evidence of every child that holds.
- `Neg`: the child does not hold; it contributes no evidence.
- `Within` (NEAR/n): an occurrence on each side, in the same field, not overlapping, with at
  most n tokens between them; evidence is only the occurrences that take part in such a pair.

So evidence says why a rule fired: only branches that hold contribute.
"""

from __future__ import annotations

from typing import ClassVar

# An occurrence: (field index, first token, end token exclusive); field 0 is title, 1 body.
Occurrence = tuple[int, int, int]
FIELD_NAMES = ("title", "body")
TITLE, BODY = 1, 2
BOTH = TITLE | BODY


class Lit:
    """A literal (term, phrase, prefix) restricted to a set of fields (a mask of TITLE, BODY)."""

    KIND: ClassVar[str] = "lit"
    __slots__ = ("key", "mask")

    def __init__(self, key: str, mask: int) -> None:
        self.key = key
        self.mask = mask


class All:
    """Every child holds."""

    KIND: ClassVar[str] = "all"
    __slots__ = ("children",)

    def __init__(self, children: tuple[Plan, ...]) -> None:
        self.children = children


class AnyOf:
    """At least one child holds."""

    KIND: ClassVar[str] = "any"
    __slots__ = ("children",)

    def __init__(self, children: tuple[Plan, ...]) -> None:
        self.children = children


class Neg:
    """The child does not hold."""

    KIND: ClassVar[str] = "not"
    __slots__ = ("child",)

    def __init__(self, child: Plan) -> None:
        self.child = child


class Within:
    """NEAR/n between an occurrence of a left and of a right literal."""

    KIND: ClassVar[str] = "near"
    __slots__ = ("distance", "left", "right")

    def __init__(self, left: tuple[Lit, ...], right: tuple[Lit, ...], distance: int) -> None:
        self.left = left
        self.right = right
        self.distance = distance


Plan = Lit | All | AnyOf | Neg | Within
