"""``sensorwatch alert``: the incidents topic to the operator's alert target, at least once.

The loop: poll a batch of incident records, turn those that are new into alerts, post them
(retrying with the one backoff policy while the target is down), and only then commit the
batch's offsets. A forwarder that stops (or dies) before the target accepted a batch has not
committed it, so the next one posts it again: nothing is lost. Alertmanager identifies an
alert by its labels, which hold the incident id, so a batch posted twice is the same alerts
twice, never new ones; and the forwarder itself skips a record of an incident whose same event
it already posted (the job publishes at least once).

It keeps the incidents it fired and that are still open, and posts them again every
``resend_s``: Alertmanager resolves an alert whose ``endsAt`` passed, so an open incident must
be refreshed, and one whose forwarder is gone resolves by itself. On start it rebuilds that
state from the topic up to its committed offsets, posting nothing. Memory is bounded by the
incidents open at once plus a fixed window of recently seen ids.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sensorwatch.alerting.alerts import alert_of, wanted
from sensorwatch.alerting.silences import Silences
from sensorwatch.alerting.targets import Target
from sensorwatch.core.config import Settings
from sensorwatch.core.contracts import dead_letter_record
from sensorwatch.core.feedback import IncidentLabels, is_label_record
from sensorwatch.core.kafka import read_until
from sensorwatch.core.retry import RetryPolicy

log = logging.getLogger(__name__)

#: Incident ids remembered for deduplication (closed ones are forgotten oldest first).
SEEN_MAX = 100_000


@dataclass
class ForwarderStats:
    records: int = 0  # incident records read
    fired: int = 0  # opened incidents posted as firing alerts
    resolved: int = 0  # closed incidents posted as resolved
    resent: int = 0  # firing alerts posted again to keep them firing
    duplicates: int = 0  # records of an event already posted (at-least-once upstream)
    filtered: int = 0  # learning, below min_severity, or not matching the label filters
    silenced: int = 0  # held back by an operator's silence
    retries: int = 0  # posts that failed and were tried again
    rejected: int = 0  # alerts the target refused (4xx): dead-lettered with its reason
    unreadable: int = 0  # records that are not incident records: dead-lettered with the reason
    batches: int = 0  # batches committed

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Open:
    rec: dict
    posted: bool  # fired at the target (not only held back by a silence)


class AlertForwarder:
    """Consumes the incidents topic and keeps the target's alerts equal to the open incidents."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time):
        self.s, self.cfg, self.clock = settings, settings.alerting, clock
        self.target = Target(self.cfg)
        self.policy = RetryPolicy(self.cfg.backoff_initial_s, self.cfg.backoff_max_s)
        self.stats = ForwarderStats()
        self.open: dict[str, _Open] = {}
        self.seen: OrderedDict[str, str] = OrderedDict()  # incident id -> opened | closed | filtered
        self.silences = Silences()
        self.verdicts = IncidentLabels()
        self._last_resend = 0.0
        self._consumer: Any = None
        self._side_consumer: Any = None
        self._side_lettered: dict[Any, int] = {}  # side partition -> offsets below were dead-lettered before
        self._metrics = _Metrics(self) if self.cfg.metrics_port is not None else None

    # -- set-up --------------------------------------------------------------------------------
    def start(self) -> AlertForwarder:
        from kafka import TopicPartition

        from sensorwatch.core.kafka import consumer

        k, topic = self.s.kafka, self.s.kafka.topics.incidents
        self._consumer = consumer(
            k, group_id=self.cfg.group_id, enable_auto_commit=False, isolation_level="read_committed"
        )
        parts = self._consumer.partitions_for_topic(topic) or set()
        committed = {p: self._consumer.committed(TopicPartition(topic, p)) for p in sorted(parts)}
        committed = {p: off for p, off in committed.items() if off}
        # the operators' side: silences and verdicts, each topic read whole, then followed. Its
        # group's commits only mark how far unreadable records were dead-lettered: a restart
        # reads the topics whole again, and dead-letters none of those twice
        self._side_consumer = consumer(
            k, group_id=f"{self.cfg.group_id}.operators", enable_auto_commit=False, isolation_level="read_committed"
        )
        side = [
            TopicPartition(t, p)
            for t in (k.topics.silences, k.topics.labels)
            for p in sorted(self._side_consumer.partitions_for_topic(t) or set())
        ]
        self._side_consumer.assign(side)
        self._side_lettered = {tp: self._side_consumer.committed(tp) or 0 for tp in side}
        self._side_consumer.seek_to_beginning()
        self._read_operators(to_end=True)  # first: the rebuild marks silenced incidents as not posted
        self._rebuild(committed)
        self._consumer.subscribe([topic])
        self._last_resend = self.clock()
        if self._metrics is not None:
            self._metrics.serve(self.cfg.metrics_host, self.cfg.metrics_port)
        return self

    def _rebuild(self, committed: dict[int, int]) -> None:
        """The open incidents and seen ids as of the committed offsets, posting nothing."""
        if not committed:
            return
        from kafka import TopicPartition

        from sensorwatch.core.kafka import consumer

        topic = self.s.kafka.topics.incidents
        c = consumer(self.s.kafka, group_id=None, isolation_level="read_committed")
        try:
            upto = {TopicPartition(topic, p): off for p, off in committed.items()}
            c.assign(list(upto))
            c.seek_to_beginning()

            def take(m) -> None:  # what lies past the commit, the group consumer reads and posts
                if m.offset >= committed[m.partition]:
                    return
                rec, why = _parse(m.value)
                if rec is None:  # dead-lettered when it was first read
                    log.info("rebuild skips the record at %s/%d: %s", m.partition, m.offset, why)
                    return
                self._plan(rec, post=False)

            read_until(c, upto, take, "the committed offsets")
        finally:
            c.close()
        log.info("rebuilt from committed offsets %s: %d incidents open", committed, len(self.open))

    def _read_operators(self, to_end: bool = False) -> None:
        """Take the silences and operators' verdicts written since the last read; ``to_end``:
        every one up to the topics' end now (at start, so no silence in force is missed)."""
        from kafka import TopicPartition

        c = self._side_consumer
        taken = 0

        def take(m) -> None:
            nonlocal taken
            taken += 1
            try:
                rec = json.loads(m.value)
                if m.topic == self.s.kafka.topics.silences:
                    self.silences.apply(rec)
                elif is_label_record(rec):  # an operator's verdict (the topic also holds simulated ground truth)
                    self.verdicts.apply(rec)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not JSON, or not one of them
                payload = m.value.decode("utf-8", "replace") if m.value is not None else None
                why = f"unreadable record on {m.topic}: {type(exc).__name__}: {exc}"
                if m.offset >= self._side_lettered.get(TopicPartition(m.topic, m.partition), 0):
                    self._dead_letter(why, payload, m.partition, m.offset, m.timestamp, topic=m.topic)
                else:  # read again at a restart: dead-lettered when it was first read
                    log.info("skipped, dead-lettered before: %s/%d/%d: %s", m.topic, m.partition, m.offset, why)

        if to_end:
            read_until(c, c.end_offsets(list(c.assignment())), take, "the silences and labels topics' end")
        for msgs in c.poll(timeout_ms=0).values():
            for m in msgs:
                take(m)
        if taken:  # after the dead letters went out: a crash before this letters them again, never loses one
            c.commit()

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: Callable[[], bool]) -> ForwarderStats:
        """Forward until ``stop()``; what was read and not accepted is left uncommitted."""
        while not stop():
            self.step(stop)
        return self.stats

    def step(self, stop: Callable[[], bool] = lambda: False, poll_ms: int = 500) -> bool:
        """One poll, its alerts posted and its offsets committed (and a due resend). False when
        ``stop()`` came while the target was down: the batch stays uncommitted, and the
        forwarder's state is ahead of its commits, so it must be closed (the next one re-reads
        the batch)."""
        self._read_operators()
        polled = self._consumer.poll(timeout_ms=poll_ms, max_records=self.cfg.batch_max)
        records = [rec for msgs in polled.values() for m in msgs if (rec := self._decode(m)) is not None]
        self.stats.records += len(records)
        planned: dict[str, tuple[dict, str]] = {}  # by incident id: one alert each, the latest state
        for rec in records:
            alert, kind = self._plan(rec, post=True)
            if alert is not None:
                planned[alert["labels"]["incident_id"]] = (alert, kind)
        resend = self.clock() - self._last_resend >= self.cfg.resend_s
        if not self._deliver([a for a, _ in planned.values()], stop):
            return False
        for _, kind in planned.values():
            setattr(self.stats, kind, getattr(self.stats, kind) + 1)
        if records:
            self._consumer.commit()
            self.stats.batches += 1
        return self._resend(stop) if resend else True

    def _decode(self, m: Any) -> dict | None:
        """An incident record, or None once a record that is not one went to the dead letters
        with its reason and address (it is committed with its batch: it never blocks the topic)."""
        rec, why = _parse(m.value)
        if rec is None:
            self.stats.unreadable += 1
            payload = m.value.decode("utf-8", "replace") if m.value is not None else None
            self._dead_letter(f"unreadable incident record: {why}", payload, m.partition, m.offset, m.timestamp)
        return rec

    def _plan(self, rec: dict, post: bool) -> tuple[dict | None, str]:
        """Take one record into the state; (its alert, "fired" or "resolved") when ``post``
        and it is one to post, else (None, "")."""
        iid, event = str(rec["incident_id"]), rec["event"]
        count = 1 if post else 0
        prior = self.seen.get(iid)
        if prior == "filtered":  # its opening was not forwarded: nor is the rest of it
            self.stats.filtered += count
            return None, ""
        if prior == event or prior == "closed":
            self.stats.duplicates += count
            return None, ""
        if event == "opened":
            if not wanted(rec, self.cfg.min_severity, self.cfg.match):
                self.stats.filtered += count
                self._remember(iid, "filtered")
                return None, ""
            muted = self.silences.silenced(str(rec["sensor"]), self.clock() * 1000)
            self.stats.silenced += count if muted else 0
            self.open[iid] = _Open(rec, posted=not muted)
            self._remember(iid, "opened")
            return (self._alert(rec), "fired") if post and not muted else (None, "")
        was = self.open.pop(iid, None)
        self._remember(iid, "closed")
        if was is None and not wanted(rec, self.cfg.min_severity, self.cfg.match):
            self.stats.filtered += count
            return None, ""
        if post and (was is None or was.posted):
            return self._alert(rec, was.rec if was is not None else None), "resolved"
        return None, ""

    def _alert(self, rec: dict, opened: dict | None = None) -> dict:
        """``opened``: the incident's opened record, whose labels (its identity) the alert keeps."""
        return alert_of(
            rec,
            now_ms=self.clock() * 1000,
            valid_ms=4 * self.cfg.resend_s * 1000,
            dashboard_url=self.cfg.dashboard_url,
            opened=opened,
            verdict=self.verdicts.get(str(rec["incident_id"])),
        )

    def _remember(self, iid: str, event: str) -> None:
        self.seen[iid] = event
        self.seen.move_to_end(iid)
        while len(self.seen) > SEEN_MAX:
            old, _ = self.seen.popitem(last=False)
            if old in self.open:  # still open: keep it (bounded by the open incidents)
                self.seen[old] = "opened"
                break

    def _resend(self, stop: Callable[[], bool]) -> bool:
        """Post every open, unsilenced incident again (one whose silence ended fires now)."""
        now_ms = self.clock() * 1000
        due = [o for o in self.open.values() if not self.silences.silenced(str(o.rec["sensor"]), now_ms)]
        if not self._deliver([self._alert(o.rec) for o in due], stop):
            return False
        for o in due:
            o.posted = True
        self.stats.resent += len(due)
        self._last_resend = self.clock()
        return True

    def _deliver(self, alerts: list[dict], stop: Callable[[], bool]) -> bool:
        """Post in batches of ``batch_max``, each retried until accepted; a rejected batch is
        dead-lettered with the target's reason. False if ``stop()`` came before acceptance."""
        for i in range(0, len(alerts), self.cfg.batch_max):
            chunk, attempt = alerts[i : i + self.cfg.batch_max], 0
            while True:
                d = self.target.post(chunk)
                if d.outcome == "accepted":
                    break
                if d.outcome == "rejected":
                    log.error("the alert target rejected %d alerts: %s (dead-lettered)", len(chunk), d.reason)
                    self.stats.rejected += len(chunk)
                    self._dead_letter(
                        f"alert target {self.target.url} rejected the batch: {d.reason}", json.dumps(chunk)
                    )
                    break
                self.stats.retries += 1
                delay = self.policy.delay(attempt)
                log.warning("alert target unavailable (%s); retry %d in %.1f s", d.reason, attempt + 1, delay)
                if stop():
                    return False
                time.sleep(delay)
                attempt += 1
        return True

    def _dead_letter(
        self,
        reason: str,
        payload: str | None,
        partition: int | None = None,  # a rejected batch spans many records: its alerts carry their ids
        offset: int | None = None,
        kafka_ts: int | None = None,
        topic: str | None = None,  # default: the incidents topic
    ) -> None:
        from sensorwatch.core.kafka import send_one

        k = self.s.kafka
        rec = dead_letter_record(
            reason,
            payload,
            topic or k.topics.incidents,
            partition,
            offset,
            kafka_ts,
            self.s.job.validation.dead_letter_payload_chars,
        )
        send_one(k, k.topics.dead_letters, rec)

    @property
    def metrics_port(self) -> int | None:
        """Where ``/metrics`` is served (``alerting.metrics_port``; 0 there: the port taken)."""
        return self._metrics.port if self._metrics is not None else None

    def close(self) -> None:
        for c in (self._consumer, self._side_consumer):
            if c is not None:
                c.close()
        self.target.close()
        if self._metrics is not None:
            self._metrics.stop()


def _parse(value: bytes | None) -> tuple[dict | None, str]:
    """(the incident record, "") or (None, why it is not one)."""
    try:
        rec = json.loads(value) if value is not None else None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, f"{type(exc).__name__}: {exc}"
    if not isinstance(rec, dict):
        return None, "ValueError: not an incident record (missing an object)"
    missing = [k for k in ("incident_id", "event", "sensor") if k not in rec]
    return (None, f"ValueError: not an incident record (missing {missing})") if missing else (rec, "")


class _Metrics:
    """The forwarder's counters in Prometheus' text format, on their own registry and port."""

    def __init__(self, fwd: AlertForwarder):
        from prometheus_client import CollectorRegistry
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        self.registry = CollectorRegistry()
        self._server: Any = None

        class Collector:
            def collect(self):
                st = fwd.stats
                sent = CounterMetricFamily(
                    "sensorwatch_alerts_sent", "Alerts the target accepted, by kind", labels=["kind"]
                )
                for kind in ("fired", "resolved", "resent"):
                    sent.add_metric([kind], getattr(st, kind))
                yield sent
                yield CounterMetricFamily("sensorwatch_alert_retries", "Posts retried", value=st.retries)
                yield CounterMetricFamily("sensorwatch_alerts_failed", "Alerts rejected", value=st.rejected)
                yield CounterMetricFamily("sensorwatch_alert_records", "Incident records read", value=st.records)
                yield CounterMetricFamily(
                    "sensorwatch_alert_unreadable_records", "Records that were not incidents", value=st.unreadable
                )
                yield GaugeMetricFamily("sensorwatch_alert_open_incidents", "Open incidents", value=len(fwd.open))

        self.registry.register(Collector())

    def serve(self, host: str, port: int | None) -> None:
        from prometheus_client import start_http_server

        self._server, _ = start_http_server(port or 0, addr=host, registry=self.registry)

    @property
    def port(self) -> int:
        return self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
