"""Routing alerts to subscriptions (services/notifier/routing.py): tenant isolation as a
property, each filter, and the index that keeps routing cheap with many subscriptions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.alert import Alert
from schemas.common import Severity
from schemas.subscription import Subscription, SubscriptionFilter
from services.notifier import routing
from services.notifier.routing import SubscriptionIndex, route, wants
from tests.unit.notifier.builders import make_alert, make_subscription

TENANTS = ["acme", "globex", "initech"]
RULES = ["r1", "r2", "r3"]
TAGS = ["a", "b", "c"]


def _catch_all(**fields: Any) -> Subscription:
    """A subscription whose filter lets everything through."""
    return make_subscription(first_of_story_only=False, **fields)


subscriptions = st.builds(
    make_subscription,
    sub_id=st.sampled_from(["s1", "s2", "s3", "s4"]),
    tenant=st.sampled_from(TENANTS),
    enabled=st.booleans(),
    rule_ids=st.lists(st.sampled_from(RULES), unique=True, max_size=2),
    tags=st.lists(st.sampled_from(TAGS), unique=True, max_size=2),
    min_severity=st.sampled_from(list(Severity)),
    first_of_story_only=st.booleans(),
)
alerts = st.builds(
    make_alert,
    tenant=st.sampled_from(TENANTS),
    rule_id=st.sampled_from(RULES),
    severity=st.sampled_from(list(Severity)),
    tags=st.lists(st.sampled_from(TAGS), unique=True, max_size=3),
    first_of_story=st.booleans(),
)


# --- tenant isolation ------------------------------------------------------------------------


@given(subs=st.lists(subscriptions, max_size=12), alert=alerts)
def test_a_subscription_never_receives_another_tenants_alert(
    subs: list[Subscription], alert: Alert
) -> None:
    index = SubscriptionIndex(subs)
    for sub in [*route(subs, alert), *index.for_alert(alert)]:
        assert sub.tenant == alert.tenant


@given(tenant=st.sampled_from(TENANTS), alert=alerts)
def test_even_a_catch_all_subscription_of_another_tenant_gets_nothing(
    tenant: str, alert: Alert
) -> None:
    sub = _catch_all(tenant=tenant)
    assert wants(sub, alert) is (tenant == alert.tenant)


def test_same_subscription_id_in_two_tenants_are_two_subscriptions() -> None:
    mine, theirs = _catch_all(tenant="acme"), _catch_all(tenant="globex")
    index = SubscriptionIndex([mine, theirs])
    assert len(index) == 2
    assert index.for_alert(make_alert(tenant="acme")) == [mine]
    assert index.for_alert(make_alert(tenant="globex")) == [theirs]
    assert index.for_alert(make_alert(tenant="initech")) == []


# --- each filter -----------------------------------------------------------------------------


def test_catch_all_subscription_wants_every_alert_of_its_tenant() -> None:
    sub = _catch_all()
    assert wants(sub, make_alert(severity=Severity.INFO, tags=[], first_of_story=False))


def test_a_disabled_subscription_wants_nothing() -> None:
    assert not wants(_catch_all(enabled=False), make_alert())


def test_rule_filter_lets_only_listed_rules_through() -> None:
    sub = _catch_all(rule_ids=["li-shangfu", "drills"])
    assert wants(sub, make_alert(rule_id="li-shangfu"))
    assert wants(sub, make_alert(rule_id="drills"))
    assert not wants(sub, make_alert(rule_id="other"))


def test_tag_filter_needs_any_one_of_the_tags() -> None:
    sub = _catch_all(tags=["defence", "china"])
    assert wants(sub, make_alert(tags=["china"]))
    assert wants(sub, make_alert(tags=["sport", "defence"]))
    assert not wants(sub, make_alert(tags=["sport"]))
    assert not wants(sub, make_alert(tags=[]))


@pytest.mark.parametrize("minimum", list(Severity))
@pytest.mark.parametrize("severity", list(Severity))
def test_min_severity_is_at_least(minimum: Severity, severity: Severity) -> None:
    sub = _catch_all(min_severity=minimum)
    order = list(Severity)
    assert wants(sub, make_alert(severity=severity)) is (
        order.index(severity) >= order.index(minimum)
    )


def test_min_severity_orders_info_low_medium_high_critical() -> None:
    sub = _catch_all(min_severity=Severity.MEDIUM)
    assert not wants(sub, make_alert(severity=Severity.INFO))
    assert not wants(sub, make_alert(severity=Severity.LOW))
    assert wants(sub, make_alert(severity=Severity.MEDIUM))
    assert wants(sub, make_alert(severity=Severity.CRITICAL))


def test_first_of_story_only_drops_later_alerts_of_a_story() -> None:
    sub = make_subscription(first_of_story_only=True)
    assert wants(sub, make_alert(first_of_story=True))
    assert not wants(sub, make_alert(first_of_story=False))
    assert wants(_catch_all(), make_alert(first_of_story=False))


def test_first_of_story_only_is_the_default() -> None:
    assert not wants(make_subscription(), make_alert(first_of_story=False))


def test_every_filter_must_hold() -> None:
    sub = _catch_all(rule_ids=["li-shangfu"], tags=["defence"], min_severity=Severity.HIGH)
    assert wants(sub, make_alert())
    assert not wants(sub, make_alert(rule_id="other"))
    assert not wants(sub, make_alert(tags=["sport"]))
    assert not wants(sub, make_alert(severity=Severity.MEDIUM))


def test_route_keeps_the_given_order() -> None:
    subs = [_catch_all(sub_id=i) for i in ("zeta", "alpha", "mid")]
    assert [s.id for s in route(subs, make_alert())] == ["zeta", "alpha", "mid"]


# --- the index -------------------------------------------------------------------------------


@given(subs=st.lists(subscriptions, max_size=12), alert=alerts)
def test_index_routes_as_the_plain_filter_does(subs: list[Subscription], alert: Alert) -> None:
    latest = {(s.tenant, s.id): s for s in subs}  # later ones replace earlier ones
    expected = sorted(route(latest.values(), alert), key=lambda s: s.id)
    assert SubscriptionIndex(subs).for_alert(alert) == expected


@given(subs=st.lists(subscriptions, max_size=12), gone=st.sets(st.integers(0, 11)), alert=alerts)
def test_index_stays_exact_through_upserts_and_removals(
    subs: list[Subscription], gone: set[int], alert: Alert
) -> None:
    index = SubscriptionIndex()
    latest: dict[tuple[str, str], Subscription] = {}
    for i, sub in enumerate(subs):
        index.upsert(sub)
        latest[(sub.tenant, sub.id)] = sub
        if i in gone:
            assert index.remove(sub.tenant, sub.id) == sub
            del latest[(sub.tenant, sub.id)]
    assert len(index) == len(latest)
    assert sorted((s.tenant, s.id) for s in index) == sorted(latest)
    expected = sorted(route(latest.values(), alert), key=lambda s: s.id)
    assert index.for_alert(alert) == expected


@given(
    steps=st.lists(
        st.tuples(subscriptions, st.booleans(), st.lists(alerts, min_size=1, max_size=3)),
        max_size=10,
    )
)
def test_index_routes_exactly_when_asked_between_changes(
    steps: list[tuple[Subscription, bool, list[Alert]]],
) -> None:
    # Alerts routed before a change must not leave the index answering as before it.
    index = SubscriptionIndex()
    latest: dict[tuple[str, str], Subscription] = {}
    for sub, remove, asked in steps:
        if remove:
            index.remove(sub.tenant, sub.id)
            latest.pop((sub.tenant, sub.id), None)
        else:
            index.upsert(sub)
            latest[(sub.tenant, sub.id)] = sub
        for alert in asked:
            expected = sorted(route(latest.values(), alert), key=lambda s: s.id)
            assert index.for_alert(alert) == expected


def test_upsert_replaces_and_moves_between_rules() -> None:
    index = SubscriptionIndex([_catch_all(rule_ids=["r1"])])
    index.upsert(_catch_all(rule_ids=["r2"]))
    assert len(index) == 1
    assert index.for_alert(make_alert(rule_id="r1")) == []
    assert [s.filter.rule_ids for s in index.for_alert(make_alert(rule_id="r2"))] == [["r2"]]


def test_get_finds_disabled_subscriptions_too() -> None:
    sub = _catch_all(enabled=False)
    index = SubscriptionIndex([sub])
    assert index.get("acme", "desk") == sub
    assert index.get("globex", "desk") is None
    assert index.for_alert(make_alert()) == []


def test_removing_an_unknown_subscription_is_harmless() -> None:
    index = SubscriptionIndex([_catch_all()])
    assert index.remove("acme", "nope") is None
    assert index.remove("globex", "desk") is None
    assert len(index) == 1
    assert index.remove("acme", "desk") is not None
    assert len(index) == 0
    assert list(index) == []


def test_index_looks_only_at_its_tenants_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    base = _catch_all()
    # model_copy skips validation: building 20,000 validated models would dominate the test.
    filters = [
        SubscriptionFilter(rule_ids=[f"r{s % 50}"], first_of_story_only=False) for s in range(100)
    ]
    subs = [
        base.model_copy(update={"tenant": f"t{t}", "id": f"s{s}", "filter": filters[s]})
        for t in range(200)
        for s in range(100)
    ]
    subs.append(_catch_all(tenant="t7", sub_id="everything"))
    index = SubscriptionIndex(subs)
    assert len(index) == 20_001
    calls = 0
    real_wants = routing.wants

    def counting(sub: Subscription, alert: Alert) -> bool:
        nonlocal calls
        calls += 1
        return real_wants(sub, alert)

    monkeypatch.setattr(routing, "wants", counting)
    matched = index.for_alert(make_alert(tenant="t7", rule_id="r3"))
    assert [s.id for s in matched] == ["everything", "s3", "s53"]
    assert calls == 3  # of 20,001 subscriptions


# -- requests: deliveries grouped as their subscriptions take them ---------------------------

_deliveries = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(min_value=1, max_value=4)),
    max_size=40,
)


@given(_deliveries)
def test_requests_carry_each_delivery_once_within_its_subscriptions_size_and_in_order(
    drawn: list[tuple[str, int]],
) -> None:
    # One size per subscription, as a subscription has one setting.
    sizes = {key: size for key, size in drawn}
    deliveries = [(key, sizes[key], (key, n)) for n, (key, _) in enumerate(drawn)]

    grouped = list(routing.into_requests(deliveries))

    assert sorted(d for request in grouped for d in request) == sorted(d for _, _, d in deliveries)
    for request in grouped:
        keys = {key for key, _ in request}
        assert len(keys) == 1, "a request is for one subscription"
        assert 1 <= len(request) <= sizes[keys.pop()]
        assert request == sorted(request, key=lambda d: d[1]), "read order is kept"
    for key, size in sizes.items():
        runs = [len(r) for r in grouped if r[0][0] == key]
        # Only the last run of a subscription may be short: nothing is split early.
        assert all(length == size for length in runs[:-1])


def test_a_subscription_of_one_alert_per_request_gets_each_at_once() -> None:
    deliveries = [("a", 1, 1), ("b", 3, 2), ("a", 1, 3), ("b", 3, 4)]
    seen: list[list[int]] = []
    for request in routing.into_requests(deliveries):
        seen.append(request)
        if request == [1]:
            # Yielded before the rest was read: a single delivery waits for no batch.
            assert seen == [[1]]

    assert seen == [[1], [3], [2, 4]]
