"""Publishing the simulated fleet to Kafka: readings, ground-truth labels, malformed payloads.

Readings go through confluent-kafka (librdkafka): on this 2-core machine kafka-python's
producer tops out near 16k messages/s and librdkafka's near 180k, measured side by side by
``bench/simulator.py`` (figures in docs/BENCHMARKS.md). Everything else uses kafka-python.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sensorwatch.core.config import KafkaConfig, SimulatorConfig
from sensorwatch.core.kafka import librdkafka_options
from sensorwatch.simulate.fleet import Fleet, Label

#: Malformed payloads the simulator mixes in (``malformed_rate``); each must be dead-lettered.
MALFORMED = (
    b"{not json",
    b'{"device": "dev-0000", "tag": "temperature", "ts": 1, "value": "hot"}',
    b'{"device": "dev-0000", "tag": "temperature", "value": 1.0}',
    b'{"device": "dev-0000", "tag": "temperature", "ts": "yesterday", "value": 1.0}',
    b'{"device": "dev 0000", "tag": "temperature", "ts": 1, "value": 1.0}',
    b"[1, 2, 3]",
    b'{"device": "dev-0000", "tag": "temperature", "ts": 1, "value": 1.0, "extra": true}',
    b'{"device": "dev-0000", "tag": "temperature", "ts": 1, "value": NaN}',
)


#: The same for device messages (``kafka.readings_format: device``): envelopes rejected whole.
#: Besides these, every ``len(MALFORMED_DEVICE) + 1``-th malformed message is a real one with
#: one value whose tag is not an id: that value is rejected alone, its siblings are kept.
MALFORMED_DEVICE = (
    b"{not json",
    b'{"device": "dev-0000", "ts": 1, "values": [1.0]}',
    b'{"device": "dev-0000", "values": {"temperature": 1.0}}',
    b'{"device": "dev 0000", "ts": 1, "values": {"temperature": 1.0}}',
    b'{"device": "dev-0000", "tag": "temperature", "ts": 1, "value": 1.0}',
    b'{"device": "dev-0000", "ts": 1, "values": {}}',
)


def _malformed(payload: bytes, j: int, device_messages: bool) -> bytes:
    """The stand-in for ``payload`` when it is the run's ``j``-th malformed message (in turn)."""
    if not device_messages:
        return MALFORMED[j % len(MALFORMED)]
    k = j % (len(MALFORMED_DEVICE) + 1)
    return MALFORMED_DEVICE[k] if k < len(MALFORMED_DEVICE) else payload[:-2] + b',"not an id":1}}'


def accounted(payload: bytes, kafka_ts: int, device_messages: bool) -> tuple[int, bool]:
    """(how many records the job accounts a payload for, whether it is rejected whole). One per
    reading; for a device message one per value, or one if it is rejected whole."""
    from sensorwatch.core.contracts import ContractError, parse_device_message, parse_reading

    try:
        if not device_messages:
            parse_reading(payload, kafka_ts)
            return 1, False
        m = parse_device_message(payload, kafka_ts)
    except ContractError:
        return 1, True
    return len(m.readings) + len(m.rejected), False


class DeliveryFailed(RuntimeError):
    """Kafka did not acknowledge some messages; the count is in the message."""


@dataclass
class SimulationStats:
    """What was sent. ``readings`` counts what the job must account for: every reading, and a
    malformed payload as the one dead letter it becomes (:func:`accounted`); ``messages`` the
    Kafka records (one per reading, or per device and time)."""

    readings: int = 0
    messages: int = 0
    late: int = 0
    malformed: int = 0
    labels: int = 0
    seconds: float = 0.0
    first_ts: int | None = None
    last_ts: int | None = None
    per_kind: dict[str, int] = field(default_factory=dict)

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {
            "readings": self.readings,
            "messages": self.messages,
            "late": self.late,
            "malformed": self.malformed,
            "labels": self.labels,
            "seconds": round(self.seconds, 3),
            "readings_per_s": round(self.readings_per_s, 1),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "labels_per_kind": self.per_kind,
        }


def _payloads(fleet: Fleet, block) -> list[bytes]:
    parts = fleet.sensor_bytes
    return [
        b'{"device":"%s","tag":"%s","ts":%d,"value":%.6g}' % (*parts[i], t, v)
        for i, t, v in zip(block.sensor_idx.tolist(), block.ts.tolist(), block.value.tolist())
    ]


def _device_payloads(fleet: Fleet, block) -> tuple[list[bytes], list[int], list[int], np.ndarray]:
    """One message per device, ts and send time (the readings a device sends together), in send
    order. Also: each message's send time and its first reading's sensor, and per reading the
    message it went into."""
    parts = fleet.sensor_bytes
    groups: dict[tuple[bytes, int, int], list[bytes]] = {}
    sensor_of: list[int] = []
    msg_of = np.empty(block.ts.size, dtype=np.int64)
    index: dict[tuple[bytes, int, int], int] = {}
    for j, (i, t, e, v) in enumerate(
        zip(block.sensor_idx.tolist(), block.ts.tolist(), block.emit_ts.tolist(), block.value.tolist())
    ):
        device, tag = parts[i]
        k = (device, t, e)
        m = index.get(k)
        if m is None:
            m = index[k] = len(index)
            groups[k] = []
            sensor_of.append(i)
        msg_of[j] = m
        groups[k].append(b'"%s":%.6g' % (tag, v))
    payloads = [
        b'{"device":"%s","ts":%d,"values":{%s}}' % (d, t, b",".join(vals)) for (d, t, _e), vals in groups.items()
    ]
    return payloads, [e for _d, _t, e in groups], sensor_of, msg_of


def publish_labels(labels: list[Label], kafka: KafkaConfig, path: Path | None) -> None:
    """Ground truth to the labels topic (kafka-python: a handful of messages) and a file."""
    from sensorwatch.core.kafka import producer

    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            for lab in labels:
                f.write(json.dumps(lab.to_dict()) + "\n")
    p = producer(kafka, acks="all")
    try:
        for lab in labels:
            p.send(
                kafka.topics.labels, json.dumps(lab.to_dict()).encode(), key=lab.sensor.encode(), timestamp_ms=lab.start
            )
        p.flush(timeout=30)
    finally:
        p.close()


def simulate(
    sim: SimulatorConfig,
    kafka: KafkaConfig,
    fleet: Fleet | None = None,
    on_block=None,
) -> SimulationStats:
    """Run the whole simulation into ``kafka.topics.readings``, in its format
    (``kafka.readings_format``); return what was sent.

    The Kafka record timestamp is the device's send time (CreateTime), which is what the
    job's validation compares ``ts`` against.
    """
    from confluent_kafka import Producer

    fleet = fleet or Fleet(sim)
    stats = SimulationStats(labels=len(fleet.labels))
    for lab in fleet.labels:
        stats.per_kind[lab.kind] = stats.per_kind.get(lab.kind, 0) + 1
    publish_labels(fleet.labels, kafka, sim.labels_file)

    failures: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    prod = Producer(librdkafka_options(kafka, "producer"))
    topic = kafka.topics.readings
    device_messages = kafka.readings_format == "device"
    rng = np.random.default_rng(sim.seed + 1)
    device_keys = [device for device, _tag in fleet.sensor_bytes]  # per sensor: its device, the Kafka key
    t0 = time.monotonic()
    wall0_ms = time.time() * 1000
    for block in fleet.blocks(block_steps=1 if sim.realtime else 60):
        if block.ts.size == 0:
            continue
        if sim.realtime:
            # pace: the block's send time maps onto wall time since the start
            due = (int(block.emit_ts[-1]) - fleet.start_ms) / 1000.0 / sim.speed - (
                time.time() * 1000 - wall0_ms
            ) / 1000.0
            if due > 0:
                time.sleep(due)
        if device_messages:
            payloads, emit, keys, msg_of = _device_payloads(fleet, block)
            sizes = np.bincount(msg_of, minlength=len(payloads)).tolist()
        else:
            payloads, emit, keys = _payloads(fleet, block), block.emit_ts.tolist(), block.sensor_idx.tolist()
            msg_of, sizes = None, None
        bad = rng.uniform(0, 1, len(payloads)) < sim.malformed_rate if sim.malformed_rate else None
        produce = prod.produce
        units = int(block.ts.size)
        for j, payload in enumerate(payloads):
            if bad is not None and bad[j]:
                payload = _malformed(payload, stats.malformed, device_messages)
                stats.malformed += 1
                n, bad[j] = accounted(payload, emit[j], device_messages)
                units += n - (sizes[j] if sizes else 1)
            key = device_keys[keys[j]]
            while True:
                try:
                    produce(topic, payload, key, timestamp=emit[j], on_delivery=on_delivery)
                    break
                except BufferError:
                    prod.poll(0.05)  # local queue full: let librdkafka drain it
        prod.poll(0)
        valid = np.ones(block.ts.size, dtype=bool) if bad is None else ~(bad if msg_of is None else bad[msg_of])
        stats.readings += units
        stats.messages += len(payloads)
        stats.late += int((block.late & valid).sum())
        first, last = int(block.ts.min()), int(block.ts.max())
        stats.first_ts = first if stats.first_ts is None else min(stats.first_ts, first)
        stats.last_ts = last if stats.last_ts is None else max(stats.last_ts, last)
        if on_block is not None:
            on_block(stats)
    remaining = prod.flush(60)
    stats.seconds = time.monotonic() - t0
    if remaining or failures:
        raise DeliveryFailed(
            f"{remaining} readings unacknowledged and {len(failures)} failed "
            f"(first error: {failures[0] if failures else 'timeout'})"
        )
    return stats
