"""Topic creation against the real broker: the aggregates topic outlives the lifecycle's span."""

import pytest
from kafka.admin import NewTopic

from sensorwatch.app.local import renamed_topics
from sensorwatch.core.config import Settings
from sensorwatch.core.kafka import admin_client
from sensorwatch.stack.topics import (
    HISTORICAL,
    aggregates_retention_ms,
    ensure_topics,
    retention_shortfall,
    topic_configs,
    topic_retention_ms,
)

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def _fresh(kafka_stack) -> Settings:
    """Settings on the session broker with topic names no other test uses, none created yet."""
    _, info = kafka_stack
    s = Settings()
    s.kafka.bootstrap_servers = info["bootstrap_servers"]
    return renamed_topics(s, "retention")


def test_the_aggregates_retention_covers_history_hold_out_and_margin():
    s = Settings()
    s.lifecycle.history_s, s.lifecycle.holdout_s = 7200.0, 600.0
    assert aggregates_retention_ms(s) == (7200 + 600 + 3600) * 1000
    configs = topic_configs(s, {"retention.ms": "60000"})
    assert configs[s.kafka.topics.aggregates]["retention.ms"] == str((7200 + 600 + 3600) * 1000)
    assert configs[s.kafka.topics.readings]["retention.ms"] == "60000", "only the aggregates topic is raised"
    assert topic_configs(s, {"retention.ms": str(10**12)})[s.kafka.topics.aggregates]["retention.ms"] == str(10**12)
    assert topic_configs(s, HISTORICAL)[s.kafka.topics.aggregates]["retention.ms"] == "-1", "kept for ever stays"
    assert "retention.ms" not in topic_configs(s)[s.kafka.topics.readings], "the others keep the broker's default"


def test_created_topics_carry_the_retention_the_broker_applies(kafka_stack):
    """Read back from the broker: the aggregates topic keeps the lifecycle's span (the broker's
    own default, 24 h, is shorter than the defaults' 24.5 h); the other topics keep the default."""
    s = _fresh(kafka_stack)
    assert sorted(ensure_topics(s)) == sorted(s.kafka.topics.all())
    assert topic_retention_ms(s.kafka, s.kafka.topics.aggregates) == aggregates_retention_ms(s) > 86_400_000
    assert topic_retention_ms(s.kafka, s.kafka.topics.readings) == 86_400_000
    assert retention_shortfall(s) is None
    h = _fresh(kafka_stack)
    ensure_topics(h, HISTORICAL)
    assert topic_retention_ms(h.kafka, h.kafka.topics.aggregates) == -1
    assert retention_shortfall(h) is None


def test_an_existing_short_aggregates_topic_is_named_with_its_fix_and_left_alone(kafka_stack):
    s = _fresh(kafka_stack)
    assert "does not exist" in retention_shortfall(s) and "`sensorwatch topics` creates it" in retention_shortfall(s)
    admin = admin_client(s.kafka)
    try:
        admin.create_topics([NewTopic(s.kafka.topics.aggregates, 1, 1, topic_configs={"retention.ms": "3600000"})])
    finally:
        admin.close()
    created = ensure_topics(s)
    assert s.kafka.topics.aggregates not in created and len(created) == len(s.kafka.topics.all()) - 1
    assert topic_retention_ms(s.kafka, s.kafka.topics.aggregates) == 3_600_000, "an existing topic is not altered"
    why = retention_shortfall(s)
    assert why is not None
    assert s.kafka.topics.aggregates in why and "keeps 1.0 h" in why and "the last 24.5 h" in why
    assert f"--add-config retention.ms={aggregates_retention_ms(s)}" in why
