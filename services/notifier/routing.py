"""Which subscriptions receive an alert. No I/O.

Tenant isolation comes first and is checked in `wants` itself, not only by the index: an
alert is never delivered to another tenant's endpoint, whatever the filters say.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from schemas.alert import Alert
from schemas.subscription import Subscription


def wants(subscription: Subscription, alert: Alert) -> bool:
    """True when `subscription` should receive `alert`.

    Same tenant, enabled, and every filter holds: the rule is listed (or none are), the alert
    has one of the tags (or none are listed), its severity is at least `min_severity`, and it
    is the first alert of its story when only those are wanted.
    """
    if subscription.tenant != alert.tenant or not subscription.enabled:
        return False
    wanted = subscription.filter
    if wanted.rule_ids and alert.rule_id not in wanted.rule_ids:
        return False
    if wanted.tags and set(wanted.tags).isdisjoint(alert.tags):
        return False
    if alert.severity.rank < wanted.min_severity.rank:
        return False
    return alert.first_of_story or not wanted.first_of_story_only


MAX_MEMO_ENTRIES = 1 << 16
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def into_requests(deliveries: Iterable[tuple[K, int, T]]) -> Iterator[list[T]]:
    """Deliveries `(subscription key, its alerts per request, delivery)` grouped into requests.

    Each request is a run of one subscription's deliveries, in the order given, of at most
    its alerts per request; with 1 (the default) each delivery is a request of its own, at
    once. Nothing waits for a run to fill: the runs still open at the end are requests too.
    """
    open_runs: dict[K, list[T]] = {}
    for key, size, delivery in deliveries:
        if size <= 1:
            yield [delivery]
            continue
        run = open_runs.setdefault(key, [])
        run.append(delivery)
        if len(run) >= size:
            del open_runs[key]
            yield run
    yield from open_runs.values()


def route(subscriptions: Iterable[Subscription], alert: Alert) -> list[Subscription]:
    """The subscriptions that want `alert`, in the order given. Linear: see `SubscriptionIndex`."""
    return [s for s in subscriptions if wants(s, alert)]


@dataclass
class _TenantShelf:
    """One tenant's subscriptions, with those filtering on rule ids filed under each rule."""

    by_id: dict[str, Subscription] = field(default_factory=dict)
    any_rule: set[str] = field(default_factory=set)
    by_rule: dict[str, set[str]] = field(default_factory=dict)

    def add(self, sub: Subscription) -> None:
        self.by_id[sub.id] = sub
        if not sub.filter.rule_ids:
            self.any_rule.add(sub.id)
        for rule_id in sub.filter.rule_ids:
            self.by_rule.setdefault(rule_id, set()).add(sub.id)

    def candidates(self, rule_id: str) -> list[Subscription]:
        """Those that may want an alert of `rule_id`, by id: any rule's, and that rule's."""
        ids = self.any_rule | self.by_rule.get(rule_id, set())
        return [self.by_id[i] for i in sorted(ids)]

    def discard(self, sub_id: str) -> Subscription | None:
        sub = self.by_id.pop(sub_id, None)
        if sub is None:
            return None
        self.any_rule.discard(sub_id)
        for rule_id in sub.filter.rule_ids:
            filed = self.by_rule.get(rule_id)
            if filed is not None:
                filed.discard(sub_id)
                if not filed:
                    del self.by_rule[rule_id]
        return sub


class SubscriptionIndex:
    """Subscriptions by tenant, then by rule: `for_alert` looks only at plausible candidates.

    An alert's candidates are its tenant's subscriptions without a rule filter plus those
    listing its rule, so the cost per alert does not grow with other tenants' subscriptions
    or with subscriptions for other rules. Disabled subscriptions stay in the index (the
    service still looks them up for retries and health) and `wants` leaves them out.
    """

    def __init__(self, subscriptions: Iterable[Subscription] = ()) -> None:
        """An index holding `subscriptions` (later ones replace earlier ones with their key)."""
        self._tenants: dict[str, _TenantShelf] = {}
        # (tenant, rule id) -> its candidates in id order: alerts repeat rules far more often
        # than subscriptions change, and any change clears it.
        self._candidates: dict[tuple[str, str], list[Subscription]] = {}
        for sub in subscriptions:
            self.upsert(sub)

    def upsert(self, subscription: Subscription) -> None:
        """Add a subscription, or replace the one with its tenant and id."""
        self._candidates.clear()
        shelf = self._tenants.setdefault(subscription.tenant, _TenantShelf())
        shelf.discard(subscription.id)
        shelf.add(subscription)

    def remove(self, tenant: str, subscription_id: str) -> Subscription | None:
        """Drop a subscription (a tombstone on the topic); returns it, or None if unknown."""
        self._candidates.clear()
        shelf = self._tenants.get(tenant)
        if shelf is None:
            return None
        removed = shelf.discard(subscription_id)
        if not shelf.by_id:
            del self._tenants[tenant]
        return removed

    def get(self, tenant: str, subscription_id: str) -> Subscription | None:
        """The subscription with this tenant and id, enabled or not."""
        shelf = self._tenants.get(tenant)
        return None if shelf is None else shelf.by_id.get(subscription_id)

    def for_alert(self, alert: Alert) -> list[Subscription]:
        """The subscriptions that want `alert`, by subscription id (a stable order)."""
        key = (alert.tenant, alert.rule_id)
        candidates = self._candidates.get(key)
        if candidates is None:
            shelf = self._tenants.get(alert.tenant)
            candidates = [] if shelf is None else shelf.candidates(alert.rule_id)
            if len(self._candidates) >= MAX_MEMO_ENTRIES:
                self._candidates.clear()  # rules and tenants without end: bounded
            self._candidates[key] = candidates
        return [sub for sub in candidates if wants(sub, alert)]

    def __len__(self) -> int:
        """How many subscriptions are held, across tenants."""
        return sum(len(shelf.by_id) for shelf in self._tenants.values())

    def __iter__(self) -> Iterator[Subscription]:
        """Every subscription held, by tenant then id."""
        for tenant in sorted(self._tenants):
            shelf = self._tenants[tenant]
            yield from (shelf.by_id[i] for i in sorted(shelf.by_id))
