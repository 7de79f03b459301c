"""Topic layout: one place names every topic, with keys, partitions and cleanup policies."""

from __future__ import annotations

from services.common.topics import build_topics


def test_every_topic_name_carries_the_prefix_and_a_version() -> None:
    topics = build_topics("acme.", partitions=3, retry_steps=2)
    names = [spec.name for spec in topics.all()]
    assert all(name.startswith("acme.") and name.endswith(".v1") for name in names)
    assert len(names) == len(set(names))


def test_rules_and_subscriptions_are_compacted_and_never_expire_by_age() -> None:
    topics = build_topics("", partitions=3, retry_steps=2)
    for spec in (topics.rules, topics.subscriptions):
        config = spec.config()
        assert config["cleanup.policy"] == "compact"
        assert "retention.ms" not in config


def test_streams_are_deleted_by_age_with_the_configured_partitions() -> None:
    topics = build_topics("", partitions=7, retry_steps=2)
    for spec in (topics.articles, topics.alerts, topics.deliveries, *topics.retries):
        assert spec.partitions == 7
        assert spec.config()["cleanup.policy"] == "delete"
        assert int(spec.config()["retention.ms"]) > 0


def test_there_is_one_retry_topic_per_step_of_the_schedule() -> None:
    topics = build_topics("p.", partitions=1, retry_steps=7)
    assert [t.name for t in topics.retries] == [
        f"p.deliveries.retry.{step}.v1" for step in range(1, 8)
    ]
