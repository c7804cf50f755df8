"""The model server while the job streams: killed for 30 s and restarted, and a new model
version published. Each test runs a model server of its own over a copy of the world's models,
so what it does to the server and the repository touches no other test."""

from __future__ import annotations

import json
import threading
import time

import pytest

from jobworld import UNTRAINED, fresh_topics, stream_and_account
from sensorwatch.app import local
from sensorwatch.jobs.metrics import job_metrics
from sensorwatch.jobs.pipeline import run
from sensorwatch.serving.repository import ModelRepository
from sensorwatch.simulate import Fleet
from sensorwatch.stack.kafka_broker import free_port

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml

OUTAGE_S = 30.0


def own_server(world, tmp_path):
    """Fresh topics, a copy of the world's model repository and a server of its own on it."""
    s = fresh_topics(world)
    s.job.emit_scores = True
    src = ModelRepository(world.serving.model_base_path)
    s.serving.model_base_path = tmp_path / "models"
    s.serving.model_config_file = None
    dst = ModelRepository(s.serving.model_base_path)
    for name in src.models():
        for v in src.versions(name):
            dst.publish_dir(name, src.model_dir(name) / str(v), v)
    dst.register_many(src.models())
    port = free_port()
    s.serving.port, s.serving.target = port, f"127.0.0.1:{port}"
    server = local.ModelServerProcess(s, tmp_path / "server.log").start()
    return s, dst, server


def test_model_server_down_30s_delays_scoring_and_loses_no_window(world, tmp_path):
    s, _repo, server = own_server(world, tmp_path)
    s.simulator.speed = 30.0  # 30 min of event time in 60 s: the outage falls mid-stream
    fleet = Fleet(s.simulator)
    rest = free_port()
    job = run(s, detached=True, extra_conf={"rest.port": str(rest), "rest.bind-port": str(rest)})
    outage: dict[str, float] = {}
    try:

        def outage_mid_stream() -> None:
            time.sleep(15)
            server.kill()
            outage["down"] = time.time()
            time.sleep(OUTAGE_S)
            server.start()
            outage["up"] = time.time()

        chaos = threading.Thread(target=outage_mid_stream)
        chaos.start()
        _, ledger = stream_and_account(s, fleet, lambda: chaos.join(120), outputs_timeout_s=180, quiet_s=15)
        metrics = job_metrics(
            rest,
            str(job.get_job_id()),
            ("sensorwatch.outages", "sensorwatch.outage_ms", "sensorwatch.score_retries"),
            wait_s=30,
        )
        status = job.get_job_status().result()
    finally:
        job.cancel().result()
        server.stop()

    assert str(status).endswith("RUNNING"), status
    assert outage["up"] - outage["down"] >= OUTAGE_S
    # no window lost or skipped: every count window the aggregates imply is scored, once
    scored = ledger.scored()
    want = {k for k in ledger.windows_expected() if not k.startswith(UNTRAINED)}
    assert want and want <= set(scored), f"{len(want - set(scored))} of {len(want)} windows lost"
    assert ledger.duplicates(s.kafka.topics.scores) == 0 and ledger.duplicates(s.kafka.topics.anomalies) == 0
    errors = [r for recs in ledger.outputs.values() for r in recs if r.get("status") == "error"]
    assert not errors, errors[:3]
    # scoring resumed in order: each sensor's windows were scored in window order
    by_sensor: dict[str, list[dict]] = {}
    for r in scored.values():
        by_sensor.setdefault(r["sensor"], []).append(r)
    for sensor, recs in by_sensor.items():
        recs.sort(key=lambda r: r["window_end"])
        times = [r["processing_ts"] for r in recs]
        assert times == sorted(times), f"{sensor} scored out of order"
    # the outage shows: windows waited for the server, and the job's metrics counted it
    waited = [r["processing_ts"] - r["window_closed_ts"] for r in scored.values()]
    assert max(waited) >= (OUTAGE_S - 5) * 1000
    assert metrics["sensorwatch.outages"] >= 1 and metrics["sensorwatch.score_retries"] >= 1, metrics
    assert metrics["sensorwatch.outage_ms"] >= (OUTAGE_S - 5) * 1000, metrics
    print(json.dumps({"windows": len(want), "max_wait_s": max(waited) / 1000, **metrics}))


def test_new_model_version_while_streaming_switches_without_errors(world, tmp_path):
    s, repo, server = own_server(world, tmp_path)
    s.simulator.speed = 30.0
    fleet = Fleet(s.simulator)
    job = run(s, detached=True)
    published: dict[str, int] = {}
    try:

        def publish_mid_stream() -> None:
            time.sleep(20)
            for name in repo.models():  # same weights, new number: what a retrain publishes
                published[name] = repo.publish_dir(name, repo.model_dir(name) / str(max(repo.versions(name))))

        publisher = threading.Thread(target=publish_mid_stream)
        publisher.start()
        _, ledger = stream_and_account(s, fleet, lambda: publisher.join(60))
    finally:
        job.cancel().result()
        server.stop()

    assert published and all(v >= 2 for v in published.values())
    scored = ledger.scored()
    want = {k for k in ledger.windows_expected() if not k.startswith(UNTRAINED)}
    assert want <= set(scored), f"{len(want - set(scored))} windows unscored across the switch"
    errors = [r for recs in ledger.outputs.values() for r in recs if r.get("status") == "error"]
    assert not errors, errors[:3]
    # each record names the version that scored it: the old one, then the new one
    for name, v in published.items():
        assert {r["model_version"] for r in scored.values() if r["model_name"] == name} <= {v - 1, v}, name
    assert any(r["model_version"] == published[r["model_name"]] for r in scored.values())
    assert any(r["model_version"] < published[r["model_name"]] for r in scored.values())
    for name, v in published.items():
        recs = sorted((r for r in scored.values() if r["model_name"] == name), key=lambda r: r["processing_ts"])
        first_new = next(i for i, r in enumerate(recs) if r["model_version"] == v)
        # once the new version answered, the old one answers no more than calls already in flight
        late_old = [r for r in recs[first_new:] if r["model_version"] != v]
        assert all(r["processing_ts"] - recs[first_new]["processing_ts"] < 2000 for r in late_old), name
