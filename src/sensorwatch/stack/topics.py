"""Creating and describing sensorwatch's topics."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from sensorwatch.core.config import KafkaConfig
from sensorwatch.core.kafka import admin_client

#: Topic settings for records whose timestamps lie years back (a replay of a historical corpus):
#: no time-based deletion, and no segment roll on every append (Kafka rolls a segment whose
#: first record is older than segment.ms).
HISTORICAL = {"retention.ms": "-1", "segment.ms": str(2**63 - 1)}


def ensure_topics(
    cfg: KafkaConfig, message_max_bytes: int | None = None, topic_configs: dict[str, str] | None = None
) -> list[str]:
    """Create every configured topic that does not exist yet (with ``topic_configs``, say
    :data:`HISTORICAL`); return the ones created."""
    admin: KafkaAdminClient = admin_client(cfg)
    try:
        existing = set(admin.list_topics())
        configs = {"max.message.bytes": str(message_max_bytes)} if message_max_bytes else {}
        configs.update(topic_configs or {})
        new = [
            NewTopic(name, cfg.partitions, cfg.replication_factor, topic_configs=configs)
            for name in cfg.topics.all()
            if name not in existing
        ]
        if new:
            try:
                admin.create_topics(new, timeout_ms=30_000)
            except TopicAlreadyExistsError:
                pass  # raced with another creator: the topic is there, which is all we need
        return [t.name for t in new]
    finally:
        admin.close()


def describe_topics(cfg: KafkaConfig) -> dict[str, int]:
    """Topic name -> partition count, for the configured topics that exist."""
    admin = admin_client(cfg)
    try:
        wanted = set(cfg.topics.all())
        out = {}
        for t in admin.describe_topics([n for n in admin.list_topics() if n in wanted]):
            out[t["name"]] = len(t["partitions"])
        return out
    finally:
        admin.close()
