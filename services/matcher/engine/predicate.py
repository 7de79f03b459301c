"""Plan -> one Python function that decides it, shared by every plan of the same shape. No I/O.

Deciding a candidate rule is the engine's innermost loop. Walking a plan tree costs a method
call per node; a generated function evaluates `k[0] in h and (k[1] in h or k[2] in h)` as
inline bytecode instead. Only the plan's *shape* is compiled (keys are passed in, never
written into source), so the source is built from a fixed vocabulary of tokens, and the few
hundred distinct shapes of a large ruleset share their code objects.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from services.matcher.engine.verify import BOTH, All, AnyOf, Lit, Neg, Occurrences, Plan, Within

# (keys present, scan, keys, position-dependent nodes) -> holds?
Decider = Callable[[frozenset[str], Occurrences, tuple[str, ...], tuple[Lit | Within, ...]], bool]


class Predicate:
    """A plan's decision: a shared function plus this plan's keys and positional nodes."""

    __slots__ = ("_decide", "_keys", "_nodes")

    def __init__(self, plan: Plan) -> None:
        keys: list[str] = []
        nodes: list[Lit | Within] = []
        shape = _shape(plan, keys, nodes)
        self._decide = _function(shape)
        self._keys = tuple(keys)
        self._nodes = tuple(nodes)

    def holds(self, scan: Occurrences) -> bool:
        """Whether the plan holds in the scanned article."""
        return self._decide(scan.hits, scan, self._keys, self._nodes)


def _shape(plan: Plan, keys: list[str], nodes: list[Lit | Within]) -> str:
    if isinstance(plan, Lit) and plan.mask == BOTH:
        keys.append(plan.key)
        return f"k[{len(keys) - 1}] in h"
    if isinstance(plan, (Lit, Within)):
        # Needs token positions: delegate to the node itself.
        nodes.append(plan)
        return f"n[{len(nodes) - 1}].holds(s)"
    if isinstance(plan, All):
        return "(" + " and ".join([_shape(c, keys, nodes) for c in plan.children]) + ")"
    if isinstance(plan, AnyOf):
        return "(" + " or ".join([_shape(c, keys, nodes) for c in plan.children]) + ")"
    assert isinstance(plan, Neg)
    return f"(not {_shape(plan.child, keys, nodes)})"


@lru_cache(maxsize=4096)
def _function(shape: str) -> Decider:
    # The source holds only the fixed tokens written by _shape: indices, `in`, and/or/not.
    decide: Decider = eval(f"lambda h, s, k, n: {shape}")  # noqa: S307
    return decide
