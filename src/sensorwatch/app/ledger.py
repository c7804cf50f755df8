"""What one job run wrote, read back from Kafka and keyed as a consumer dedups it.

The demo waits on it for the job's output to be complete (not a fixed time), and the job
tests reconcile with it: every reading is aggregated, late or dead-lettered, and every count
window the job owes has its record.
"""

from __future__ import annotations

import json
import time

from sensorwatch.app import local
from sensorwatch.core.config import Settings
from sensorwatch.core.outputs import OUTPUTS
from sensorwatch.core.windows import matches
from sensorwatch.simulate import Fleet


class Ledger:
    """Everything one job run wrote, read back from Kafka and keyed as a consumer dedups it.

    ``windows_expected()`` derives the count windows the job owes from its own aggregates
    (every run of S consecutive means of a sensor ends one window), so a test can say that
    no window was lost without trusting the scorer's output to tell it what it should be.
    """

    def __init__(self, s: Settings):
        self.s = s
        self.aggregates: dict[str, dict] = {}
        self.late: dict[str, dict] = {}
        self.dead: dict[str, dict] = {}
        self.outputs: dict[str, list[dict]] = {}  # window key -> every record (scores, anomalies, no-model)
        self.raw = {"aggregates": 0, "late": 0, "dead": 0}
        self.incidents: list[dict] = []
        self._follower = None  # catch_up's consumer

    def readings_accounted(self) -> int:
        return sum(r["count"] for r in self.aggregates.values()) + len(self.late) + len(self.dead)

    def read_inputs(self, expected: int, timeout_s: float = 180) -> None:
        """Aggregates, late and dead letters until they account for ``expected`` readings."""
        t = self.s.kafka.topics
        where = {
            t.aggregates: (self.aggregates, "aggregates"),
            t.late: (self.late, "late"),
            t.dead_letters: (self.dead, "dead"),
        }

        def on_record(rec, msg) -> None:
            store, name = where[msg.topic]
            store[msg.key.decode()] = rec
            self.raw[name] += 1

        local.consume(self.s, list(where), lambda _r: self.readings_accounted() >= expected, timeout_s, on_record)

    def windows_expected(self, exclude: str = "watermark/") -> set[str]:
        """Keys ``sensor@end`` (and ``device@end`` for devices with a device model, whose
        steps are the tumbling windows in which any of its tags had a reading)."""
        by_key: dict[str, set[int]] = {}
        selector = self.s.serving.device_models
        for rec in self.aggregates.values():
            if not rec["sensor"].startswith(exclude):
                key = rec["device"] if matches(rec["device"], selector) else rec["sensor"]
                by_key.setdefault(key, set()).add(rec["window_end"])
        out = set()
        seq = self.s.job.seq_len
        for key, ends in by_key.items():
            out.update(f"{key}@{e}" for e in sorted(ends)[seq - 1 :])
        return out

    def read_outputs(self, timeout_s: float = 120, quiet_s: float = 8, on_record=None) -> None:
        """Scores, anomalies and no-model records until every expected window has one, or
        nothing new came for ``quiet_s``, or ``timeout_s``; ``on_record(record, message)`` sees
        each as it comes. Every window has a record only with ``job.emit_scores`` on."""
        t = self.s.kafka.topics
        want = self.windows_expected()
        last = [time.monotonic()]

        def on_output(rec, msg) -> None:
            self.outputs.setdefault(rec["key"], []).append({**rec, "_topic": msg.topic})
            last[0] = time.monotonic()
            if on_record is not None:
                on_record(rec, msg)

        def done(_r) -> bool:
            return want <= set(self.outputs) or time.monotonic() - last[0] > quiet_s

        local.consume(self.s, [o.topic(t) for o in OUTPUTS], done, timeout_s, on_output)

    def read_incidents(self, timeout_s: float = 60, quiet_s: float = 5, on_record=None) -> list[dict]:
        """The incidents topic from its start, until nothing new came for ``quiet_s`` (the
        incident stage runs right behind the scorer: call this after :meth:`read_outputs`)."""
        last = [time.monotonic()]

        def on_incident(rec, msg) -> None:
            self.incidents.append(rec)
            last[0] = time.monotonic()
            if on_record is not None:
                on_record(rec, msg)

        local.consume(
            self.s,
            self.s.kafka.topics.incidents,
            lambda _r: time.monotonic() - last[0] > quiet_s,
            timeout_s,
            on_incident,
        )
        return self.incidents

    def catch_up(self, readings: int, timeout_s: float = 600, quiet_s: float = 1.0) -> None:
        """Read on from where the last call stopped (one consumer for the ledger's life) until
        ``readings`` are accounted for, every window the job owes has its record, and the
        incidents topic has been quiet for ``quiet_s``: the barrier of a replay in steps, whose
        next step must not start before the job has written all of this one. Needs
        ``job.emit_scores``; raises TimeoutError after ``timeout_s``, naming what is missing."""
        t = self.s.kafka.topics
        inputs = {t.aggregates: self.aggregates, t.late: self.late, t.dead_letters: self.dead}
        outputs = {o.topic(t) for o in OUTPUTS}
        if self._follower is None:
            self._follower = local.reader(self.s, [*inputs, *outputs, t.incidents])
        deadline = time.monotonic() + timeout_s
        last_incident, want = time.monotonic(), None
        while True:
            for msgs in self._follower.poll(timeout_ms=100).values():
                for m in msgs:
                    rec = json.loads(m.value)
                    if m.topic in inputs:
                        inputs[m.topic][m.key.decode()] = rec
                    elif m.topic in outputs:
                        self.outputs.setdefault(rec["key"], []).append({**rec, "_topic": m.topic})
                    else:
                        self.incidents.append(rec)
                        last_incident = time.monotonic()
            if want is None and self.readings_accounted() >= readings:
                want = self.windows_expected()  # the aggregates are complete: what is owed is known
            if want is not None and want <= self.outputs.keys() and time.monotonic() - last_incident >= quiet_s:
                return
            if time.monotonic() > deadline:
                missing = len(want - self.outputs.keys()) if want is not None else "unknown"
                raise TimeoutError(
                    f"the job did not catch up in {timeout_s:g} s: {self.readings_accounted():,} of "
                    f"{readings:,} readings accounted for, windows without a record: {missing}"
                )

    def close(self) -> None:
        """Close :meth:`catch_up`'s consumer."""
        if self._follower is not None:
            self._follower.close()
            self._follower = None

    def scored(self) -> dict[str, dict]:
        """Window key -> its score record (anomalous windows go to the anomalies topic, the
        others to the scores topic when ``job.emit_scores`` is on)."""
        t = self.s.kafka.topics
        return {k: r for k, recs in self.outputs.items() for r in recs if r["_topic"] in (t.scores, t.anomalies)}

    def anomalies(self) -> list[dict]:
        return [r for recs in self.outputs.values() for r in recs if r["_topic"] == self.s.kafka.topics.anomalies]

    def duplicates(self, topic: str) -> int:
        """Records of ``topic`` beyond the first per key: what an at-least-once consumer drops."""
        return sum(max(0, sum(r["_topic"] == topic for r in recs) - 1) for recs in self.outputs.values())

    def missing(self) -> set[str]:
        """Windows the job owes (:meth:`windows_expected`) that have no record yet."""
        return self.windows_expected() - set(self.outputs)


def stream_and_account(
    s: Settings,
    fleet: Fleet,
    before_flush=None,
    inputs_timeout_s: float = 180,
    outputs_timeout_s: float = 120,
    quiet_s: float = 8,
    on_output=None,
):
    """Stream ``fleet`` into the running job, close its last windows and read back all the job
    wrote: ``(simulator stats, Ledger)``. ``before_flush()`` runs once the fleet is sent (join a
    fault-injecting thread there)."""
    from sensorwatch.simulate import simulate

    stats = simulate(s.simulator, s.kafka, fleet=fleet)
    if before_flush is not None:
        before_flush()
    local.flush_watermark(s, fleet.end_ms + 120_000)
    ledger = Ledger(s)
    ledger.read_inputs(stats.readings, timeout_s=inputs_timeout_s)
    ledger.read_outputs(timeout_s=outputs_timeout_s, quiet_s=quiet_s, on_record=on_output)
    return stats, ledger
