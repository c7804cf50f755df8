"""The output topics into the :class:`~sensorwatch.dashboard.store.FleetStore`, on one thread.

The dashboard reads; it never commits offsets or joins a consumer group, so any number of
dashboards see the whole fleet. It starts ``dashboard.range_s`` before now (Kafka's timestamp
index: the job stamps each record with its window's end) or at the topics' start with
``dashboard.from_start``, and follows them. Topics that do not exist yet (the dashboard started
before the job) are looked for again every few seconds. A record that is not JSON, or lacks a
field the store needs, is counted and logged with its address and reason, and shown on the
overview; the job's own dead letters are the place for bad readings, not for our output.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from sensorwatch.core.config import Settings
from sensorwatch.core.kafka import librdkafka_options
from sensorwatch.dashboard.store import FleetStore

log = logging.getLogger(__name__)

#: How often topics not yet found are looked for again.
RESCAN_S = 5.0


def topic_kinds(settings: Settings) -> dict[str, str]:
    """Each output topic the dashboard reads, and the store's name for its records."""
    t = settings.kafka.topics
    return {
        t.aggregates: "aggregate",
        t.scores: "score",
        t.anomalies: "score",
        t.no_model: "score",
        t.incidents: "incident",
        t.labels: "label",
    }


class TopicFeed:
    """Follows the output topics into ``store`` until :meth:`stop`."""

    def __init__(self, settings: Settings, store: FleetStore):
        self.settings, self.store = settings, store
        self.kinds = topic_kinds(settings)
        self.unreadable = 0
        self.last_error: str | None = None
        self.caught_up = threading.Event()  # set once every assigned partition was read to its end once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._assigned: set[str] = set()

    def start(self) -> TopicFeed:
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _assign_new(self, consumer: Any) -> None:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

        missing = [t for t in self.kinds if t not in self._assigned]
        meta = consumer.list_topics(timeout=10)
        since_ms = int((time.time() - self.settings.dashboard.range_s) * 1000)
        parts = []
        for topic in missing:
            tm = meta.topics.get(topic)
            if tm is None or tm.error is not None or not tm.partitions:
                continue
            tps = [TopicPartition(topic, p, since_ms) for p in sorted(tm.partitions)]
            if self.settings.dashboard.from_start:
                found = [TopicPartition(topic, tp.partition, OFFSET_BEGINNING) for tp in tps]
            else:
                # the first offset at or after since_ms; none (-1): nothing that recent, read from the end
                found = [
                    TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
                    for tp in consumer.offsets_for_times(tps, timeout=10)
                ]
            parts += found
            self._assigned.add(topic)
        if parts:
            consumer.incremental_assign(parts)
            log.info("dashboard reads %s", ", ".join(sorted({p.topic for p in parts})))

    def _run(self) -> None:
        from confluent_kafka import Consumer, KafkaError, KafkaException

        conf = {
            **librdkafka_options(self.settings.kafka, "consumer"),
            "group.id": "sensorwatch-dashboard",  # required by librdkafka; never joined (assign only)
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
        consumer = Consumer(conf)
        at_end: set[tuple[str, int]] = set()
        next_scan = 0.0
        try:
            while not self._stop.is_set():
                if len(self._assigned) < len(self.kinds) and time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + RESCAN_S
                    try:
                        self._assign_new(consumer)
                    except KafkaException as exc:  # the broker is away: look again at the next scan
                        self.last_error = f"cannot read the topics' metadata: {exc}"
                        log.warning("dashboard: %s; trying again in %.0f s", self.last_error, RESCAN_S)
                msgs = consumer.consume(num_messages=2000, timeout=0.2)
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            at_end.add((m.topic(), m.partition()))
                            continue
                        self._bad(m, f"Kafka error: {err}")
                        continue
                    self._take(m)
                if not self.caught_up.is_set() and self._assigned and self._all_at_end(consumer, at_end):
                    self.caught_up.set()
        finally:
            consumer.close()

    @staticmethod
    def _all_at_end(consumer: Any, at_end: set[tuple[str, int]]) -> bool:
        return all((tp.topic, tp.partition) in at_end for tp in consumer.assignment())

    def _take(self, m: Any) -> None:
        kind = self.kinds[m.topic()]
        try:
            rec = json.loads(m.value())
            self.store.ingest(kind, rec)
        except (ValueError, KeyError, TypeError) as exc:
            self._bad(m, f"{type(exc).__name__}: {exc}")

    def _bad(self, m: Any, reason: str) -> None:
        self.unreadable += 1
        self.last_error = f"{m.topic()}/{m.partition()}@{m.offset()}: {reason}"
        log.warning("dashboard skips an unreadable record at %s", self.last_error)
