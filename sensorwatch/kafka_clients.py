"""Kafka clients (kafka-python) built from :class:`KafkaConfig`, security settings included.

Every producer, consumer and admin client in sensorwatch comes from here, so SASL/SSL
set once in the configuration reaches all of them. Secrets are passed, never logged.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from sensorwatch.config import KafkaConfig


def client_options(cfg: KafkaConfig) -> dict[str, Any]:
    opts: dict[str, Any] = {"bootstrap_servers": cfg.bootstrap_servers.split(","),
                            "security_protocol": cfg.security_protocol}
    if cfg.security_protocol.startswith("SASL"):
        opts["sasl_mechanism"] = cfg.sasl_mechanism
        opts["sasl_plain_username"] = cfg.sasl_username
        opts["sasl_plain_password"] = cfg.sasl_password.get_secret_value() if cfg.sasl_password else None
    if cfg.security_protocol.endswith("SSL"):
        if cfg.ssl_cafile:
            opts["ssl_cafile"] = str(cfg.ssl_cafile)
        if cfg.ssl_certfile:
            opts["ssl_certfile"] = str(cfg.ssl_certfile)
        if cfg.ssl_keyfile:
            opts["ssl_keyfile"] = str(cfg.ssl_keyfile)
    return opts


def admin_client(cfg: KafkaConfig) -> KafkaAdminClient:
    return KafkaAdminClient(request_timeout_ms=30_000, **client_options(cfg))


def producer(cfg: KafkaConfig, **overrides: Any) -> KafkaProducer:
    """A batching producer: throughput first, acks from the leader, ordered per partition."""
    opts: dict[str, Any] = dict(
        acks=1,
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024,
        max_in_flight_requests_per_connection=1,
    )
    opts.update(overrides)
    return KafkaProducer(**client_options(cfg), **opts)


def consumer(cfg: KafkaConfig, *topics: str, **overrides: Any) -> KafkaConsumer:
    opts: dict[str, Any] = dict(auto_offset_reset="earliest", enable_auto_commit=False,
                                fetch_max_bytes=16 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024)
    opts.update(overrides)
    return KafkaConsumer(*topics, **client_options(cfg), **opts)
