"""Creating and describing sensorwatch's topics."""

from __future__ import annotations

import math

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from sensorwatch.core.config import KafkaConfig, Settings
from sensorwatch.core.kafka import admin_client
from sensorwatch.core.retry import wait_until

#: Topic settings for records whose timestamps lie years back (a replay of a historical corpus):
#: no time-based deletion, and no segment roll on every append (Kafka rolls a segment whose
#: first record is older than segment.ms).
HISTORICAL = {"retention.ms": "-1", "segment.ms": str(2**63 - 1)}

#: Slack on the aggregates topic's retention beyond the lifecycle's span: the broker's clock and
#: the lifecycle's may differ, and a pass may start a little after it was due.
RETENTION_MARGIN_S = 3600.0


def aggregates_retention_ms(s: Settings) -> int:
    """The least ``retention.ms`` the aggregates topic needs: the lifecycle reads the last
    ``history_s + holdout_s`` of it on every pass (the training history and the hold-out), and
    a broker's default (24 h) is shorter than the defaults' 24.5 h, so the oldest part of the
    history would be gone when it is read."""
    lc = s.lifecycle
    return math.ceil((lc.history_s + lc.holdout_s + RETENTION_MARGIN_S) * 1000)


def topic_configs(s: Settings, common: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Each configured topic's settings at creation: the largest message the broker takes,
    ``common`` (say :data:`HISTORICAL`), and for the aggregates topic a retention that covers
    the lifecycle's span (:func:`aggregates_retention_ms`) unless ``common`` keeps it longer."""
    base = {"max.message.bytes": str(s.stack.message_max_bytes), **(common or {})}
    out = {name: dict(base) for name in s.kafka.topics.all()}
    kept = int(base.get("retention.ms", 0))
    if kept != -1:
        out[s.kafka.topics.aggregates]["retention.ms"] = str(max(kept, aggregates_retention_ms(s)))
    return out


def ensure_topics(s: Settings, common: dict[str, str] | None = None) -> list[str]:
    """Create every configured topic that does not exist yet, with :func:`topic_configs`;
    return the ones created. An existing topic's settings are left as they are (see
    :func:`retention_shortfall`)."""
    cfg = s.kafka
    admin: KafkaAdminClient = admin_client(cfg)
    try:
        existing = set(admin.list_topics())
        configs = topic_configs(s, common)
        created = []
        for name in cfg.topics.all():
            if name in existing:
                continue
            try:  # one at a time: a topic another creator made meanwhile is not reported as ours
                admin.create_topics(
                    [NewTopic(name, cfg.partitions, cfg.replication_factor, topic_configs=configs[name])],
                    timeout_ms=30_000,
                )
                created.append(name)
            except TopicAlreadyExistsError:
                continue  # made since the listing (or the listing lagged): it is there, which is all we need
        return created
    finally:
        admin.close()


def topic_retention_ms(cfg: KafkaConfig, topic: str, timeout_s: float = 10.0) -> int:
    """A topic's effective ``retention.ms`` as the broker applies it (its own setting, or the
    broker's default); -1: kept for ever.

    A topic created a moment ago can be unknown to the broker that answers (its metadata not
    there yet), which kafka-python answers with no configs: asked again for up to ``timeout_s``,
    then a named error."""
    admin = admin_client(cfg)
    entry: dict = {}

    def described() -> bool:
        got = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})], config_filter="all"
        )
        (by_type,) = got.values()  # {resource type: {name: {key: config data}}}
        entry.update(by_type.get(topic, {}).get("retention.ms") or {})
        return bool(entry)

    try:
        if not wait_until(described, timeout_s, every_s=0.2):
            raise LookupError(f"the broker at {cfg.bootstrap_servers} describes no retention.ms for topic {topic!r}")
    finally:
        admin.close()
    return int(entry["value"])


def retention_shortfall(s: Settings) -> str | None:
    """Why the aggregates topic would lose history the lifecycle reads, with the command that
    fixes it; None when its retention covers the lifecycle's span. For a topic made before this
    check, or by hand: :func:`ensure_topics` never changes an existing topic."""
    topic, need = s.kafka.topics.aggregates, aggregates_retention_ms(s)
    if topic not in describe_topics(s.kafka):
        return f"the aggregates topic {topic!r} does not exist on {s.kafka.bootstrap_servers}: `sensorwatch topics` creates it"
    kept = topic_retention_ms(s.kafka, topic)
    if kept == -1 or kept >= need:
        return None
    return (
        f"the aggregates topic {topic!r} keeps {kept / 3.6e6:.1f} h of records, but the lifecycle reads "
        f"the last {(s.lifecycle.history_s + s.lifecycle.holdout_s) / 3600:.1f} h (history_s + holdout_s): "
        f"the oldest part of every training history is deleted before it is read. Raise it: kafka-configs.sh "
        f"--bootstrap-server {s.kafka.bootstrap_servers} --alter --entity-type topics --entity-name {topic} "
        f"--add-config retention.ms={need}"
    )


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
