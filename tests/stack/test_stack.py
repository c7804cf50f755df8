"""The local stack against a real Apache Kafka broker."""

import os
import time
import uuid

import pytest

from sensorwatch.core.config import Settings
from sensorwatch.core.kafka import admin_client, consumer, producer
from sensorwatch.stack import LocalStack

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def test_produce_consume_round_trip(settings):
    topic = settings.kafka.topics.readings
    p = producer(settings.kafka, acks="all")
    sent = [f'{{"n": {i}}}'.encode() for i in range(500)]
    for i, v in enumerate(sent):
        p.send(topic, v, key=b"k%d" % (i % 7))
    p.flush(30)
    p.close()
    c = consumer(settings.kafka, topic, group_id=None, consumer_timeout_ms=5000)
    got = [m.value for m in c]
    c.close()
    assert sorted(got) == sorted(sent)


def test_topics_created_as_configured(settings):
    admin = admin_client(settings.kafka)
    try:
        described = {t["name"]: t for t in admin.describe_topics(settings.kafka.topics.all())}
    finally:
        admin.close()
    assert set(described) == set(settings.kafka.topics.all())
    for t in described.values():
        assert t["error_code"] == 0
        assert len(t["partitions"]) == settings.kafka.partitions


def test_stack_up_status_down_leaves_no_process(tmp_path):
    """A second, independent broker: ready within 20 s, and gone after `down`."""
    s = Settings()
    s.stack.work_dir = tmp_path
    s.stack.kafka_port = 0
    s.stack.controller_port = 0
    s.kafka.partitions = 2
    s.kafka.topics.readings = f"custom.readings.{uuid.uuid4().hex[:6]}"
    stack = LocalStack(s)
    t0 = time.monotonic()
    info = stack.up()
    elapsed = time.monotonic() - t0
    try:
        assert elapsed < 20, f"broker took {elapsed:.1f}s to be ready"
        assert s.kafka.topics.readings in info["topics_created"]
        status = LocalStack(s).status()  # a fresh object finds it through the state file
        assert status["running"] and status["topics"][s.kafka.topics.readings] == 2
        pid = status["pid"]
        assert os.path.exists(info["log"])
        # up again is a no-op on a running stack
        assert stack.up()["pid"] == pid
    finally:
        assert stack.down()
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "broker process still running after stack down"
    assert not LocalStack(s).status()["running"]
    assert not stack.down()  # idempotent
