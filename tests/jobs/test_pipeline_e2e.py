"""The whole job on real parts: Kafka broker, Flink mini-cluster, the gRPC model server.

A simulated fleet of 4 devices x 3 tags streams 30 minutes of event time (paced 60x) with all
six anomaly kinds injected, malformed readings mixed in, hostile payloads from the shared
vectors, deliberately late readings, and one device that has no model: a new device, scored
by its tags' fleet priors from its first complete count window.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from jobworld import UNTRAINED, fresh_topics
from sensorwatch.app import local
from sensorwatch.app.evaluate import evaluate
from sensorwatch.core.kafka import producer
from sensorwatch.jobs.pipeline import run
from sensorwatch.simulate import Fleet, simulate

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "readings.json").read_text())


def _send(s, payloads: list[tuple[bytes | None, int]]) -> None:
    p = producer(s.kafka, acks="all")
    for value, ts in payloads:
        p.send(s.kafka.topics.readings, value, key=b"x", timestamp_ms=ts)
    p.flush(30)
    p.close()


def _utf8(text: str) -> bool:
    try:
        text.encode()
        return True
    except UnicodeEncodeError:
        return False


def test_job_end_to_end(world):
    s = fresh_topics(world)
    s.job.emit_scores = True
    fleet = Fleet(s.simulator)
    job = run(s, detached=True)
    try:
        # hostile payloads from the shared contract vectors (no null payloads: tombstones are
        # not readings), sent with the record time each case expects
        bad = [c for c in VECTORS["cases"] if c["expect"] != "ok" and c["payload"] is not None and _utf8(c["payload"])]
        _send(s, [(c["payload"].encode(), c["kafka_ts"] or int(time.time() * 1000)) for c in bad])
        stats = simulate(s.simulator, s.kafka, fleet=fleet)
        # readings for a window the watermark passed long ago: late by construction
        late = [
            (
                json.dumps(
                    {"device": "dev-0000", "tag": "pressure", "ts": fleet.start_ms + 1000 * i, "value": 1.0}
                ).encode(),
                int(time.time() * 1000),
            )
            for i in range(7)
        ]
        time.sleep(3)
        _send(s, late)
        flushed = local.flush_watermark(s, fleet.end_ms + 120_000)
        # the flush readings open the last window themselves, which no later reading closes
        sent = stats.readings + len(bad) + len(late) + flushed
        expected = sent - flushed

        counts: dict[str, int] = {}

        def reconciled(_recs) -> bool:
            return sum(counts.values()) >= expected

        def on_record(rec, msg) -> None:
            counts[msg.topic + "|" + msg.key.decode()] = rec.get("count", 1)  # dedup by key

        t = s.kafka.topics
        local.consume(s, [t.dead_letters, t.late, t.aggregates], reconciled, 180, on_record)
        dead = local.consume(s, s.kafka.topics.dead_letters, lambda r: False, 3)
        late_out = local.consume(s, s.kafka.topics.late, lambda r: False, 3)
        time.sleep(5)  # the last batches' scores
        anomalies = local.consume(s, s.kafka.topics.anomalies, lambda r: False, 5)
        no_model = local.consume(s, s.kafka.topics.no_model, lambda r: False, 5)
        scores = local.consume(s, s.kafka.topics.scores, lambda r: False, 5)
    finally:
        job.cancel().result()

    # counts reconcile: readings in = aggregated + late + invalid, nothing lost or doubled
    aggregated = sum(v for k, v in counts.items() if k.startswith(s.kafka.topics.aggregates + "|"))
    assert aggregated + len(late_out) + len(dead) == expected, (aggregated, len(late_out), len(dead), sent, flushed)

    # every malformed reading is a dead letter with its reason and whole payload
    assert len(dead) == stats.malformed + len(bad)
    reasons = {d["reason"].split(":")[0] for d in dead}
    assert {c["expect"] for c in bad} <= reasons
    assert {d["payload"] for d in dead} >= {c["payload"] for c in bad}

    # the deliberately late readings are in the late topic, with the watermark that passed them
    late_keys = {(r["sensor"], r["ts"]) for r in late_out}
    assert {("dev-0000/pressure", fleet.start_ms + 1000 * i) for i in range(7)} <= late_keys
    assert all(r["ts"] <= r["watermark"] for r in late_out)

    # injected events of every kind are found, with few false alerts
    trained = [lab.to_dict() for lab in fleet.labels if not lab.sensor.startswith(UNTRAINED)]
    assert {lab["kind"] for lab in trained} == set(s.simulator.anomaly_kinds)
    own = [r for r in anomalies if not r["sensor"].startswith(UNTRAINED)]
    ev = evaluate(own, trained)
    print(json.dumps(ev.to_dict()))
    assert ev.recall >= 0.9 and ev.precision >= 0.9, ev.to_dict()

    # the untrained device: every count window scored by its tag's fleet prior, from the first
    # one (its S-th aggregate), status prior; no no-model record, as every tag has a prior
    assert no_model == [], no_model[:3]
    prior = [r for r in anomalies + scores if r["sensor"].startswith(UNTRAINED)]
    assert prior and all(r["status"] == "prior" and r["model_name"] == f"_prior~{r['tag']}" for r in prior)
    assert all(r["status"] == "scored" for r in anomalies + scores if not r["sensor"].startswith(UNTRAINED))
    ends: dict[str, list[int]] = {}
    for k in counts:
        topic, _, key = k.partition("|")
        if topic == s.kafka.topics.aggregates and key.startswith(UNTRAINED):
            sensor, _, end = key.partition("@")
            ends.setdefault(sensor, []).append(int(end))
    assert set(ends) == {f"{UNTRAINED}/{t}" for t in s.simulator.tags}
    for sensor, e in ends.items():
        e.sort()
        got = sorted(r["window_end"] for r in prior if r["sensor"] == sensor)
        assert got == e[s.job.seq_len - 1 :], f"{sensor}: each count window once, from the first complete one"
    ev_prior = evaluate(
        [r for r in anomalies if r["sensor"].startswith(UNTRAINED)],
        [lab.to_dict() for lab in fleet.labels if lab.sensor.startswith(UNTRAINED)],
    )
    print("fleet prior on the new device:", json.dumps(ev_prior.to_dict()))

    # every anomaly record carries the contract's fields, scored by a named model version
    for r in own:
        assert r["is_anomaly"] and r["score"] > r["threshold"]
        assert r["model_name"].startswith("packed-") and r["model_version"] >= 1
        # S tumbling means; more than S x window when a dropout left a window without readings
        assert r["window_end"] - r["window_start"] >= s.job.seq_len * s.job.window_s * 1000
        assert len(r["values"]) == s.job.seq_len and r["processing_ts"] >= r["window_closed_ts"]
    # one score per trained sensor and closed count window, each window once
    keys = [r["key"] for r in scores + anomalies]
    assert len(keys) == len(set(keys))
