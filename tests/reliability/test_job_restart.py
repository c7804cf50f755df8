"""The job stopped with a savepoint mid-stream and resumed from it: zero readings lost, zero
anomalies duplicated, every window scored once."""

from __future__ import annotations

import json
import threading
import time

import pytest

from jobworld import Ledger, assert_whole_across, fresh_topics
from sensorwatch.app import local
from sensorwatch.jobs.pipeline import run, stop_with_savepoint
from sensorwatch.simulate import Fleet, simulate

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def test_stop_with_savepoint_and_resume_loses_and_doubles_nothing(world, tmp_path):
    s = fresh_topics(world)
    s.job.emit_scores = True
    s.job.checkpoint_dir = tmp_path / "checkpoints"
    s.simulator.speed = 30.0
    fleet = Fleet(s.simulator)
    job = run(s, detached=True)
    stopped: dict = {}
    second = None
    try:

        def stop_mid_stream() -> None:
            time.sleep(20)
            t = time.monotonic()
            stopped["savepoint"] = stop_with_savepoint(job, (tmp_path / "savepoints").resolve().as_uri())
            stopped["stop_s"] = time.monotonic() - t
            stopped["at_ms"] = int(time.time() * 1000)

        stopper = threading.Thread(target=stop_mid_stream)
        stopper.start()
        stats = simulate(s.simulator, s.kafka, fleet=fleet)  # the fleet goes on while the job is down
        stopper.join(120)
        assert stopped.get("savepoint"), "stop-with-savepoint did not complete"
        s.job.restore_from = stopped["savepoint"]
        t = time.monotonic()
        second = run(s, detached=True)
        local.flush_watermark(s, fleet.end_ms + 120_000)
        ledger = Ledger(s)
        ledger.read_inputs(stats.readings, timeout_s=240)
        resumed_s = time.monotonic() - t
        ledger.read_outputs(timeout_s=120)
    finally:
        (second or job).cancel().result()

    want, _ = assert_whole_across(ledger, stats.readings, stopped["at_ms"], "savepoint")
    print(
        json.dumps(
            {
                "stop_with_savepoint_s": round(stopped["stop_s"], 1),
                "resume_to_reconciled_s": round(resumed_s, 1),
                "windows": len(want),
                "anomalies": len(ledger.anomalies()),
            }
        )
    )
