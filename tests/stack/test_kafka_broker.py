"""The broker's storage is formatted with a cluster id StorageTool can always parse."""

from __future__ import annotations

import base64

from sensorwatch.stack.kafka_broker import new_cluster_id


def test_cluster_ids_never_start_with_a_dash_and_are_16_bytes():
    ids = [new_cluster_id() for _ in range(20_000)]  # one raw draw in 64 starts with '-'
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
    assert sum(i.startswith("_") for i in ids) > 0  # the other URL-safe characters still occur


def test_stack_kafka_properties_reach_the_running_broker(kafka_stack):
    """``stack.kafka_properties`` go over sensorwatch's own server.properties, and the broker
    runs with them (read back from the broker, not from the file). The session's broker sets
    the retention check every second (tests/conftest.py)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    from sensorwatch.core.kafka import admin_client

    stack, info = kafka_stack
    assert stack.settings.stack.kafka_properties == {"log.retention.check.interval.ms": "1000"}
    admin = admin_client(stack.settings.kafka)
    try:
        got = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")], config_filter="all")
        (by_name,) = got.values()  # {resource type: {name: {key: config data}}}
        entries = by_name["1"]
    finally:
        admin.close()
    value = {k: (c["value"] if isinstance(c, dict) else c) for k, c in entries.items()}
    assert value["log.retention.check.interval.ms"] == "1000"
    assert value["log.retention.hours"] == "24", "the rest of sensorwatch's own settings stay"
