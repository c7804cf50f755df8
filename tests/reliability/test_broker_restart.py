"""The Kafka broker killed (SIGKILL) mid-stream and restarted: the job recovers by itself and
every reading produced before, during and after is accounted for; duplicates, if a restart
replays, carry the same key (at-least-once, as documented) and no anomaly is lost."""

from __future__ import annotations

import json
import threading
import time

import pytest

from jobworld import UNTRAINED, fresh_topics, stream_and_account
from sensorwatch.jobs.pipeline import run
from sensorwatch.simulate import Fleet
from sensorwatch.stack import LocalStack

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml

DOWN_S = 10.0


def test_broker_killed_and_restarted_mid_stream(world, tmp_path):
    s = world.model_copy(deep=True)
    s.stack.work_dir, s.stack.kafka_port, s.stack.controller_port = tmp_path / "stack", 0, 0
    stack = LocalStack(s)
    s.kafka.bootstrap_servers = stack.up()["bootstrap_servers"]  # a broker of its own to kill
    s = fresh_topics(s)
    s.job.emit_scores = True
    s.simulator.speed = 30.0
    fleet = Fleet(s.simulator)
    job = run(s, detached=True)
    chaos: dict = {}
    try:

        def kill_and_restart() -> None:
            time.sleep(20)
            broker = stack.broker()
            broker.kill()
            chaos["down"] = time.time()
            time.sleep(DOWN_S)
            chaos["start_s"] = broker.start()
            chaos["up"] = time.time()

        t = threading.Thread(target=kill_and_restart)
        t.start()
        stats, ledger = stream_and_account(
            s, fleet, lambda: t.join(120), inputs_timeout_s=300, outputs_timeout_s=180, quiet_s=15
        )
        status = job.get_job_status().result()
    finally:
        job.cancel().result()
        stack.down()

    assert chaos["up"] - chaos["down"] >= DOWN_S
    assert str(status).endswith("RUNNING"), status
    # every reading produced before, during and after the outage is accounted for, once by key
    assert ledger.readings_accounted() == stats.readings
    # no anomaly lost: every count window the aggregates imply is scored
    want = {k for k in ledger.windows_expected() if not k.startswith(UNTRAINED)}
    scored = ledger.scored()
    assert want <= set(scored), f"{len(want - set(scored))} of {len(want)} windows lost"
    # the first output written after the broker came back: the job's recovery time
    after = [r["processing_ts"] for r in scored.values() if r["processing_ts"] >= chaos["up"] * 1000]
    recovery_s = (min(after) / 1000 - chaos["up"]) if after else None
    assert recovery_s is not None and recovery_s < 120
    dups = {name: ledger.duplicates(getattr(s.kafka.topics, name)) for name in ("scores", "anomalies")}
    print(
        json.dumps(
            {
                "readings": stats.readings,
                "windows": len(want),
                "broker_restart_s": round(chaos["start_s"], 1),
                "first_output_after_restart_s": round(recovery_s, 1),
                "raw_duplicates": dups,
                "aggregate_duplicates": ledger.raw["aggregates"] - len(ledger.aggregates),
            }
        )
    )
