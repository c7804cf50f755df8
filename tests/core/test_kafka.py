"""One translator of KafkaConfig for kafka-python, librdkafka and the Java client."""

from __future__ import annotations

import logging

import pytest

from sensorwatch.core.config import KafkaConfig
from sensorwatch.core.kafka import java_properties, kafka_python_options, librdkafka_options

#: librdkafka properties that apply to one client role only (CONFWARN on the other).
RDKAFKA_PRODUCER_ONLY = {
    "linger.ms",
    "batch.size",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "acks",
    "enable.idempotence",
}
RDKAFKA_CONSUMER_ONLY = {"fetch.max.bytes", "max.partition.fetch.bytes", "group.id", "auto.offset.reset"}


def _ssl(tmp_path, protocol: str) -> KafkaConfig:
    files = {}
    for name in ("ca", "cert", "key"):
        f = tmp_path / f"{name}.pem"
        f.write_text(f"-----BEGIN {name.upper()}-----\n")
        files[name] = f
    return KafkaConfig(
        security_protocol=protocol,
        ssl_cafile=files["ca"],
        ssl_certfile=files["cert"],
        ssl_keyfile=files["key"],
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",
    )


def test_roles_keep_producer_and_consumer_properties_apart():
    cfg = KafkaConfig()
    producer, consumer = librdkafka_options(cfg, "producer"), librdkafka_options(cfg, "consumer")
    assert RDKAFKA_PRODUCER_ONLY <= set(producer) and not RDKAFKA_CONSUMER_ONLY & set(producer)
    assert not RDKAFKA_PRODUCER_ONLY & set(consumer)
    assert "linger_ms" in kafka_python_options(cfg, "producer")
    assert "linger_ms" not in kafka_python_options(cfg, "consumer")
    assert "fetch_max_bytes" not in kafka_python_options(cfg, "producer")


@pytest.mark.parametrize("role", ["producer", "consumer"])
def test_librdkafka_accepts_every_property_of_its_role_without_a_config_warning(role):
    """The real client is built (no broker needed to construct it) and logs no CONFWARN."""
    import confluent_kafka

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger(f"test.rdkafka.{role}")
    log.addHandler(Keep())
    log.setLevel(logging.DEBUG)
    opts = {**librdkafka_options(KafkaConfig(), role), "logger": log}
    if role == "consumer":
        client = confluent_kafka.Consumer({**opts, "group.id": "t"})
        client.close()
    else:
        client = confluent_kafka.Producer(opts)
        client.flush(0)
    del client
    warnings = [r.getMessage() for r in records if "CONFWARN" in r.getMessage()]
    assert not warnings, warnings


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_ssl_files_apply_only_where_the_protocol_uses_ssl(tmp_path, protocol):
    cfg = _ssl(tmp_path, protocol)
    assert not {k for k in kafka_python_options(cfg, "admin") if k.startswith("ssl")}
    assert not {k for k in librdkafka_options(cfg, "producer") if k.startswith("ssl")}
    assert not {k for k in java_properties(cfg) if k.startswith("ssl")}


def test_ssl_and_sasl_reach_every_dialect(tmp_path):
    cfg = _ssl(tmp_path, "SASL_SSL")
    kp = kafka_python_options(cfg, "consumer")
    assert kp["ssl_cafile"] == str(cfg.ssl_cafile) and kp["sasl_plain_password"] == "p"
    rd = librdkafka_options(cfg, "consumer")
    assert rd["ssl.ca.location"] == str(cfg.ssl_cafile) and rd["sasl.password"] == "p"
    assert rd["security.protocol"] == "sasl_ssl"
    jp = java_properties(cfg)
    assert jp["ssl.truststore.location"] == str(cfg.ssl_cafile)
    assert jp["ssl.keystore.certificate.chain"].startswith("-----BEGIN CERT")
    assert 'PlainLoginModule required username="u" password="p";' in jp["sasl.jaas.config"]
