"""The job fails while an incident is open and restarts from its latest checkpoint: the
incident is neither lost nor opened twice, and its close still comes (the incident state is
Flink state, so the checkpoint holds it)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from jobworld import Ledger, fresh_topics
from sensorwatch.app import local
from sensorwatch.jobs.pipeline import run
from sensorwatch.simulate import Fleet, simulate

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def _latest_checkpoint(root: Path) -> str:
    done = [p for p in root.glob("*/chk-*") if (p / "_metadata").is_file()]
    assert done, f"no completed checkpoint under {root}"
    return str(max(done, key=lambda p: int(p.name.split("-")[1])))


def test_a_job_restored_from_a_checkpoint_mid_incident_keeps_the_incident(world, tmp_path):
    s = fresh_topics(world)
    s.job.emit_scores = True
    s.job.checkpoint_dir = tmp_path / "checkpoints"
    sim = s.simulator
    # slow, long level shifts: an incident stays open for tens of seconds of wall time
    sim.speed, sim.duration_s = 15.0, 1200.0
    sim.anomaly_kinds, sim.anomaly_max_s, sim.anomaly_min_s = ["level_shift"], 480.0, 420.0
    fleet = Fleet(sim)
    assert fleet.labels, "the fleet must inject at least one level shift"
    job = run(s, detached=True)
    crash: dict = {}
    second = None
    try:

        def crash_mid_incident() -> None:
            def opened(recs) -> bool:
                return any(r["event"] == "opened" and not r["learning"] for r in recs)

            got = local.consume(s, s.kafka.topics.incidents, opened, 240)
            first = next(r for r in got if r["event"] == "opened" and not r["learning"])
            crash["incident"] = first["incident_id"]
            time.sleep(2 * s.job.checkpoint_interval_ms / 1000)  # a checkpoint after the opening
            job.cancel().result()  # as a failure would: no savepoint, no drain
            crash["at_ms"] = int(time.time() * 1000)

        crasher = threading.Thread(target=crash_mid_incident)
        crasher.start()
        stats = simulate(sim, s.kafka, fleet=fleet)  # the fleet goes on while the job is down
        crasher.join(300)
        assert "at_ms" in crash, "no incident opened before the stream ended"
        s.job.restore_from = _latest_checkpoint(Path(s.job.checkpoint_dir))
        second = run(s, detached=True)
        local.flush_watermark(s, fleet.end_ms + 120_000)
        ledger = Ledger(s)
        ledger.read_inputs(stats.readings, timeout_s=240)
        ledger.read_outputs(timeout_s=180)
        incidents = ledger.read_incidents()
    finally:
        (second or job).cancel().result()

    mine = [r for r in incidents if r["incident_id"] == crash["incident"]]
    opened = [r for r in mine if r["event"] == "opened"]
    closed = [r for r in mine if r["event"] == "closed"]
    # it was open across the crash: opened before it, closed after it
    assert opened and min(r["emitted_ts"] for r in opened) < crash["at_ms"]
    assert closed, f"the close of {crash['incident']} never came after the restart"
    assert min(r["emitted_ts"] for r in closed) > crash["at_ms"], "it closed before the crash: not a mid-incident test"
    # not opened twice: at-least-once may repeat a record after a restore, under the same key;
    # the same sensor has no second incident overlapping this one
    sensor = opened[0]["sensor"]
    assert len({(r["start"], r["windows"]) for r in opened}) == 1, opened
    start, end = opened[0]["start"], closed[-1]["end"]
    overlapping = {
        r["incident_id"]
        for r in incidents
        if r["sensor"] == sensor and r["incident_id"] != crash["incident"] and start <= r["start"] <= end
    }
    assert not overlapping, overlapping
    # and no other incident lost its close or got a second opening
    by_id: dict[str, set[str]] = {}
    for r in incidents:
        by_id.setdefault(r["incident_id"], set()).add(r["event"])
    assert all("opened" in ev for ev in by_id.values()), by_id
    print(
        json.dumps(
            {
                "incident": crash["incident"],
                "opened_to_crash_s": round((crash["at_ms"] - min(r["emitted_ts"] for r in opened)) / 1000, 1),
                "crash_to_close_s": round((min(r["emitted_ts"] for r in closed) - crash["at_ms"]) / 1000, 1),
                "opened_records": len(opened),
                "incidents": len(by_id),
            }
        )
    )
