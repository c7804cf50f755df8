"""The device-message format through the whole job: one message per device and time.

The same world as the end-to-end test, its fleet sent as ``{"device", "ts", "values"}``
messages (``kafka.readings_format: device``), with malformed messages mixed in: envelopes that
must be dead-lettered whole, and messages with one value whose tag is not an id, which must be
dead-lettered alone while the message's other values are kept. The hostile envelopes of the
shared vectors go in too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from jobworld import UNTRAINED, Ledger, fresh_topics
from sensorwatch.app import local
from sensorwatch.app.evaluate import evaluate
from sensorwatch.core.kafka import producer
from sensorwatch.jobs.pipeline import run
from sensorwatch.simulate import Fleet, simulate

pytestmark = pytest.mark.integration

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "device_messages.json").read_text())


def test_device_messages_reconcile_and_score_like_readings(world):
    s = fresh_topics(world)
    s.kafka.readings_format = "device"
    s.job.emit_scores = True
    s.simulator.malformed_rate = 0.002  # the end-to-end test's: a dropped message thins three sensors' windows
    fleet = Fleet(s.simulator)
    job = run(s, detached=True)
    try:
        bad = [c for c in VECTORS["cases"] if c["expect"] != "ok"]
        p = producer(s.kafka, acks="all")
        for c in bad:
            p.send(s.kafka.topics.readings, c["payload"].encode(), key=b"x", timestamp_ms=c["kafka_ts"])
        p.flush(30)
        p.close()
        stats = simulate(s.simulator, s.kafka, fleet=fleet)
        local.flush_watermark(s, fleet.end_ms + 120_000)
        ledger = Ledger(s)
        ledger.read_inputs(stats.readings + len(bad), timeout_s=180)
        time.sleep(3)  # anything past the reconciliation would be a double count
        ledger.read_inputs(stats.readings + len(bad), timeout_s=5)
        ledger.read_outputs(timeout_s=120, quiet_s=10)
    finally:
        job.cancel().result()

    # one message carries several readings
    assert stats.messages * 2 < stats.readings, stats.to_dict()
    # every reading in is aggregated, late or dead-lettered, exactly once
    assert ledger.readings_accounted() == stats.readings + len(bad), ledger.raw
    assert ledger.raw["aggregates"] == len(ledger.aggregates) and ledger.raw["dead"] == len(ledger.dead), ledger.raw
    assert all(len(recs) == 1 for recs in ledger.outputs.values()), "a window scored twice"

    whole = [d for k, d in ledger.dead.items() if "#" not in k]
    alone = [d for k, d in ledger.dead.items() if "#" in k]
    # the shared vectors' hostile envelopes: each one dead letter with its reason and payload
    assert {c["payload"] for c in bad} <= {d["payload"] for d in whole}
    assert {c["expect"] for c in bad} <= {d["reason"].split(":")[0] for d in whole}
    # a value rejected alone names its tag; its message's other values were aggregated
    assert alone and all(d["reason"].startswith("bad_id: values.not an id") for d in alone)
    for d in alone:
        msg = json.loads(d["payload"])
        for tag in msg["values"]:
            if tag != "not an id":
                window = msg["ts"] - msg["ts"] % int(s.job.window_s * 1000) + int(s.job.window_s * 1000)
                assert f"{msg['device']}/{tag}@{window}" in ledger.aggregates, (msg, tag)
    assert len(whole) + len(alone) == len(ledger.dead) == len(bad) + stats.malformed

    # every count window the job owes is scored, and the injected faults are found as in the
    # one-reading format (test_pipeline_e2e): the format changes the parse, nothing after it
    assert not ledger.missing()
    trained = [lab.to_dict() for lab in fleet.labels if not lab.sensor.startswith(UNTRAINED)]
    ev = evaluate([r for r in ledger.anomalies() if not r["sensor"].startswith(UNTRAINED)], trained)
    assert ev.recall >= 0.9 and ev.precision >= 0.9, ev.to_dict()


@pytest.mark.parametrize("fmt", ["reading", "device"])
def test_one_parse_and_one_scorer_serve_every_sink(fmt):
    """Every sink reads the one parse and the one scorer (the planner's reused sub-plans). A
    device-message parse is a table function; read through a SQL view, each sink had its own
    copy of the job after it and every window was scored once per sink."""
    from sensorwatch.core.config import Settings
    from sensorwatch.jobs.pipeline import explain

    s = Settings()
    s.kafka.readings_format = fmt
    s.job.emit_scores = True
    plan = explain(s).split("== Optimized Execution Plan ==")[-1]
    assert plan.count("PythonCorrelate(invocation=[score_batch") == 1, plan
    assert plan.count("Correlate(invocation=[parse_device_message") == (fmt == "device"), plan
    # the JVM builds each record once, whichever sinks read the records (three with every score)
    assert plan.count("Correlate(invocation=[explode_records") == 1, plan
    assert plan.count("Correlate(invocation=[unpack_scores") == 1, plan
    assert plan.count("TableSourceScan(") == 1
