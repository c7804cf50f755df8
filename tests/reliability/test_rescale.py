"""The job rescaled mid-stream: stopped with a savepoint at parallelism 1 and resumed from it
at parallelism 2, so each sensor's keyed state (its count window, its calibration and incident
state) moves to whichever of the two slots its key group now belongs to.

Nothing may be lost or doubled, every count window is scored once, and the incidents the job
opens equal those the same rules open over the job's own raw scores (``reference_openings``):
a calibration or an incident that did not survive the move would open differently.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from jobworld import Ledger, assert_whole_across, fresh_topics
from sensorwatch.app import local
from sensorwatch.core.incidents import reference_openings
from sensorwatch.jobs.metrics import subtask_records_in
from sensorwatch.jobs.pipeline import run, stop_with_savepoint
from sensorwatch.serving.repository import incident_seeds
from sensorwatch.simulate import Fleet, simulate
from sensorwatch.stack.kafka_broker import free_port

pytestmark = pytest.mark.integration


def test_rescaled_from_one_slot_to_two_the_state_follows_its_keys(world, tmp_path):
    s = fresh_topics(world)
    s.job.emit_scores = True
    s.job.checkpoint_dir = tmp_path / "checkpoints"
    s.simulator.speed = 30.0
    assert s.kafka.partitions >= 2
    fleet = Fleet(s.simulator)
    job = run(s, detached=True)
    stopped: dict = {}
    second = None
    rest = free_port()
    try:

        def stop_mid_stream() -> None:
            time.sleep(20)
            stopped["savepoint"] = stop_with_savepoint(job, (tmp_path / "savepoints").resolve().as_uri())
            stopped["at_ms"] = int(time.time() * 1000)

        stopper = threading.Thread(target=stop_mid_stream)
        stopper.start()
        stats = simulate(s.simulator, s.kafka, fleet=fleet)
        stopper.join(120)
        assert stopped.get("savepoint"), "stop-with-savepoint did not complete"
        s.job.restore_from, s.job.parallelism = stopped["savepoint"], 2
        second = run(s, detached=True, extra_conf={"rest.port": str(rest), "rest.bind-port": str(rest)})
        local.flush_watermark(s, fleet.end_ms + 120_000)
        ledger = Ledger(s)
        ledger.read_inputs(stats.readings, timeout_s=240)
        ledger.read_outputs(timeout_s=120)
        incidents = ledger.read_incidents()
        spread = subtask_records_in(
            rest, str(second.get_job_id()), "ProcessTableFunction", wait_s=30
        )  # track_incidents
    finally:
        (second or job).cancel().result()

    # the resumed job ran its keyed incident stage on two slots, both with sensors of their own
    assert len(spread) == 2 and all(n > 0 for n in spread), spread
    # nothing lost or doubled across the move, every window scored once
    _, scored = assert_whole_across(ledger, stats.readings, stopped["at_ms"], "rescale")
    # the incidents equal the reference rules over the same scores, sensor by sensor
    reference = reference_openings(
        s.job.incidents, int(s.job.window_s * 1000), scored.values(), incident_seeds(s.serving.model_base_path)
    )
    emitted: dict[str, set] = {}
    for r in incidents:
        if r["event"] == "opened":
            emitted.setdefault(r["sensor"], set()).add((r["start"], r["learning"]))
    assert sum(map(len, reference.values())) > 0, "the stream must open incidents to compare"
    mismatched = {k: (emitted.get(k, set()), v) for k, v in reference.items() if emitted.get(k, set()) != v}
    assert not mismatched and set(emitted) <= set(reference), mismatched
    print(json.dumps({"subtask_windows": spread, "windows": len(scored), "incidents": sum(map(len, emitted.values()))}))
