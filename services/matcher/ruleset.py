"""The rules a matcher worker holds: changes staged as they arrive, compiled in batches. No I/O.

Rule records arrive one by one from the compacted rules topic, but a watchlist applied
through the API arrives as hundreds of records at once. Rebuilding the index once per
record would cost seconds; staging them and compiling once per batch costs one rebuild.
The matcher in use is swapped atomically, so matching never waits for a compile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from schemas.watchlist import RuleRecord, WatchlistRule
from services.matcher.engine.errors import RuleError
from services.matcher.engine.matcher import Matcher, RuleKey


def parse_rule_key(key: str) -> RuleKey | None:
    """`tenant/rule_id` (the compacted topic's key) as a RuleKey, or None when malformed."""
    tenant, slash, rule_id = key.partition("/")
    return (tenant, rule_id) if slash and tenant and rule_id else None


@dataclass(frozen=True, slots=True)
class Compiled:
    """What one batch of changes did."""

    upserts: int
    deletes: int
    errors: list[RuleError]
    seconds: float


class LiveRuleset:
    """The current `Matcher` plus the changes not compiled into it yet."""

    def __init__(self) -> None:
        self._matcher, _ = Matcher.build(())
        self._upserts: dict[RuleKey, WatchlistRule] = {}
        self._deletes: set[RuleKey] = set()

    @property
    def matcher(self) -> Matcher:
        """The matcher to use now; replaced (never mutated) by `compile_pending`."""
        return self._matcher

    @property
    def pending(self) -> int:
        """Changes staged since the last compile."""
        return len(self._upserts) + len(self._deletes)

    def stage(self, key: RuleKey, record: RuleRecord | None) -> None:
        """Remember a rule's latest state (None: deleted); the last change per key wins."""
        if record is None:
            self._upserts.pop(key, None)
            self._deletes.add(key)
        else:
            self._deletes.discard(key)
            self._upserts[key] = record.rule

    def compile_pending(self) -> Compiled:
        """Compile every staged change into a new matcher and make it current."""
        upserts = [(tenant, rule) for (tenant, _), rule in self._upserts.items()]
        deletes = list(self._deletes)
        self._upserts, self._deletes = {}, set()
        started = time.perf_counter()
        self._matcher, errors = self._matcher.updated(upserts, deletes)
        return Compiled(len(upserts), len(deletes), errors, time.perf_counter() - started)
