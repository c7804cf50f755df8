"""Kafka client settings from :class:`KafkaConfig`, for every client library sensorwatch uses.

Three Kafka clients run in sensorwatch: kafka-python (admin, the small producers and the
consumers of tools and tests), librdkafka through confluent-kafka (the simulator's bulk
producer, the benchmark's raw consumer) and the Java client inside Flink's Kafka connector.
Each spells the same settings differently, so this one module translates
:class:`KafkaConfig` for all three. SASL and SSL set once in the configuration reach every
client, and the SSL files apply only where ``security_protocol`` uses SSL, in every dialect.

Every translator takes a *role* (admin, producer or consumer): tuning that belongs to one
role never reaches a client of the other (librdkafka warns ``CONFWARN`` for each property
that does not apply to its client's role). Secrets are passed, never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sensorwatch.core.config import KafkaConfig

if TYPE_CHECKING:  # kafka-python's classes only for the type hints of the builders below
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

Role = Literal["admin", "producer", "consumer"]

#: Producer settings that favour throughput: batches, leader acks, per-partition order.
_PRODUCER_TUNING = {
    "acks": 1,
    "linger_ms": 20,
    "batch_size": 512 * 1024,
    "max_request_size": 8 * 1024 * 1024,
    "max_in_flight_requests_per_connection": 1,
}
_CONSUMER_TUNING = {
    "auto_offset_reset": "earliest",
    "enable_auto_commit": False,
    "fetch_max_bytes": 16 * 1024 * 1024,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
}
#: librdkafka producer: large local queues and idempotence (no duplicates, order kept across retries).
_RDKAFKA_PRODUCER_TUNING = {
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 512 * 1024,
    "message.max.bytes": 8 * 1024 * 1024,
    "acks": "all",
    "enable.idempotence": True,
}
_RDKAFKA_CONSUMER_TUNING = {"fetch.max.bytes": 16 * 1024 * 1024, "max.partition.fetch.bytes": 8 * 1024 * 1024}


def _uses_sasl(cfg: KafkaConfig) -> bool:
    return cfg.security_protocol.startswith("SASL")


def _uses_ssl(cfg: KafkaConfig) -> bool:
    return cfg.security_protocol.endswith("SSL")


def _password(cfg: KafkaConfig) -> str:
    return cfg.sasl_password.get_secret_value() if cfg.sasl_password else ""


#: How each Python client spells the security settings: (SASL mechanism, user, password) and
#: (CA file, certificate file, key file) keys.
_SPELLINGS = {
    "kafka-python": (
        ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"),
        ("ssl_cafile", "ssl_certfile", "ssl_keyfile"),
    ),
    "librdkafka": (
        ("sasl.mechanism", "sasl.username", "sasl.password"),
        ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location"),
    ),
}


def _security(cfg: KafkaConfig, client: str) -> dict[str, Any]:
    """SASL credentials where the protocol uses SASL, SSL files where it uses SSL, in ``client``'s spelling."""
    sasl_keys, ssl_keys = _SPELLINGS[client]
    opts: dict[str, Any] = {}
    if _uses_sasl(cfg):
        opts.update(zip(sasl_keys, (cfg.sasl_mechanism, cfg.sasl_username, _password(cfg))))
    if _uses_ssl(cfg):
        opts.update((k, str(f)) for k, f in zip(ssl_keys, (cfg.ssl_cafile, cfg.ssl_certfile, cfg.ssl_keyfile)) if f)
    return opts


def kafka_python_options(cfg: KafkaConfig, role: Role) -> dict[str, Any]:
    """Keyword arguments of kafka-python's ``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``."""
    tuning = {"producer": _PRODUCER_TUNING, "consumer": _CONSUMER_TUNING, "admin": {"request_timeout_ms": 30_000}}
    return {
        "bootstrap_servers": cfg.bootstrap_servers.split(","),
        "security_protocol": cfg.security_protocol,
        **_security(cfg, "kafka-python"),
        **tuning[role],
    }


def librdkafka_options(cfg: KafkaConfig, role: Role) -> dict[str, Any]:
    """The configuration dict of confluent-kafka's ``Producer`` or ``Consumer`` (librdkafka)."""
    tuning = {"producer": _RDKAFKA_PRODUCER_TUNING, "consumer": _RDKAFKA_CONSUMER_TUNING, "admin": {}}
    return {
        "bootstrap.servers": cfg.bootstrap_servers,
        "security.protocol": cfg.security_protocol.lower(),
        **_security(cfg, "librdkafka"),
        **tuning[role],
    }


def java_properties(cfg: KafkaConfig) -> dict[str, str]:
    """The Java client's properties (for Flink's connector, as its ``properties.*`` options).

    Security only: the connector itself sets the role's properties, and the job adds its
    sink and source tuning where it builds each table. Secrets end up in
    ``sasl.jaas.config``, a key Flink masks in its logs. PEM files are read here because
    the Java client takes a keystore's certificate chain and key as text.
    """
    props = {"bootstrap.servers": cfg.bootstrap_servers, "security.protocol": cfg.security_protocol}
    if _uses_sasl(cfg):
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if cfg.sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        user = (cfg.sasl_username or "").replace('"', '\\"')
        password = _password(cfg).replace('"', '\\"')
        props["sasl.mechanism"] = str(cfg.sasl_mechanism)
        props["sasl.jaas.config"] = f'{module} required username="{user}" password="{password}";'
    if _uses_ssl(cfg):
        if cfg.ssl_cafile:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(cfg.ssl_cafile)
        if cfg.ssl_certfile and cfg.ssl_keyfile:
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.certificate.chain"] = Path(cfg.ssl_certfile).read_text()
            props["ssl.keystore.key"] = Path(cfg.ssl_keyfile).read_text()
    return props


def admin_client(cfg: KafkaConfig) -> KafkaAdminClient:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**kafka_python_options(cfg, "admin"))


def producer(cfg: KafkaConfig, **overrides: Any) -> KafkaProducer:
    """A batching producer: throughput first, acks from the leader, ordered per partition."""
    from kafka import KafkaProducer

    return KafkaProducer(**{**kafka_python_options(cfg, "producer"), **overrides})


def consumer(cfg: KafkaConfig, *topics: str, **overrides: Any) -> KafkaConsumer:
    """A consumer from the earliest offset that commits nothing unless told to."""
    from kafka import KafkaConsumer

    return KafkaConsumer(*topics, **{**kafka_python_options(cfg, "consumer"), **overrides})


def send_one(cfg: KafkaConfig, topic: str, rec: dict, key: str | None = None, timeout_s: float = 30.0) -> None:
    """Write one JSON record and wait for every in-sync replica's ack: for the rare records
    that must not be lost nor wait for a batch (a silence, a verdict, a dead letter)."""
    import json

    p = producer(cfg, acks="all", linger_ms=0)
    try:
        p.send(topic, key=key.encode() if key is not None else None, value=json.dumps(rec).encode()).get(
            timeout=timeout_s
        )
    finally:
        p.close()


def read_until(c, upto: dict, take: Callable[[Any], None], what: str, timeout_s: float = 120.0) -> None:
    """Poll the assigned consumer ``c``, handing ``take`` every message polled, until each
    partition's position reached its offset in ``upto``; RuntimeError naming ``what`` past
    ``timeout_s``."""
    import time

    todo = {tp: off for tp, off in upto.items() if c.position(tp) < off}
    deadline = time.monotonic() + timeout_s
    while todo:
        if time.monotonic() > deadline:
            raise RuntimeError(f"could not read up to {what}: {todo}")
        for msgs in c.poll(timeout_ms=200).values():
            for m in msgs:
                take(m)
        todo = {tp: off for tp, off in todo.items() if c.position(tp) < off}


def read_topic(cfg: KafkaConfig, topic: str, take: Callable[[Any], None], timeout_s: float = 120.0) -> None:
    """Hand ``take`` every message of ``topic`` from its start up to its end as it is now (no
    consumer group: nothing is committed). A topic that does not exist reads as empty."""
    from kafka import TopicPartition

    c = consumer(cfg, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        if not parts:
            return
        c.assign(parts)
        c.seek_to_beginning(*parts)
        read_until(c, c.end_offsets(parts), take, f"the end of {topic}", timeout_s)
    finally:
        c.close()
