"""``flink run -py jobs/anomaly_job.py`` on a standalone cluster from the wheel's own scripts."""

from __future__ import annotations

import json
import sys
import time

import pytest
import requests
import yaml

from jobworld import fresh_topics
from sensorwatch.app import local
from sensorwatch.app.standalone import REPO, StandaloneCluster
from sensorwatch.core.config import json_value
from sensorwatch.simulate import Fleet, simulate
from sensorwatch.stack.kafka_broker import free_port

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


METRIC = "flink_taskmanager_job_task_operator_sensorwatch_windows_scored"


def wait_scored(ports: range, timeout_s: float) -> float:
    """The windows scored, summed over the job's operators, from whichever reporter port has them."""
    deadline = time.monotonic() + timeout_s
    while True:
        total = 0.0
        for port in ports:
            try:
                text = requests.get(f"http://localhost:{port}/metrics", timeout=2).text
            except requests.RequestException:
                continue
            total += sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(METRIC + "{"))
        if total > 0 or time.monotonic() > deadline:
            return total
        time.sleep(1)


def test_flink_run_py_on_standalone_cluster(world, tmp_path):
    s = fresh_topics(world)
    s.simulator.duration_s = 900.0
    s.simulator.speed = 120.0
    s.job.python_executable = sys.executable
    conf = tmp_path / "sensorwatch.yaml"
    conf.write_text(yaml.safe_dump(json.loads(json.dumps(s.model_dump(mode="python"), default=json_value))))
    base = free_port()
    ports = range(base, base + 6)  # the JobManager takes one, the TaskManager the next free one
    cluster = StandaloneCluster(
        tmp_path / "flink", metrics_port=f"{ports[0]}-{ports[-1]}", conf={"metrics.fetcher.update-interval": "1000"}
    ).start()
    try:
        # settings given to the cluster (the bench's 1 s metric grain) are the ones it runs with
        got = requests.get(f"http://localhost:{cluster.rest_port}/jobmanager/config", timeout=10).json()
        running = {e["key"]: e["value"] for e in got}
        assert running["metrics.fetcher.update-interval"] == "1000"
        res = cluster.run_py(REPO / "jobs" / "anomaly_job.py", "--config", str(conf))
        assert res.returncode == 0, "\n".join(
            ln for ln in (res.stdout + res.stderr).splitlines() if "Caused by" in ln or "Exception" in ln
        )[-3000:]
        assert "Job has been submitted with JobID" in res.stdout
        fleet = Fleet(s.simulator)
        simulate(s.simulator, s.kafka, fleet=fleet)
        local.flush_watermark(s, fleet.end_ms + 120_000)
        anomalies = local.consume(s, s.kafka.topics.anomalies, lambda r: len(r) >= 5, 120)
        # the cluster's own Prometheus reporter serves the job's metrics (scraped within its interval)
        scored = wait_scored(ports, 60)
    finally:
        cluster.stop()
    assert len(anomalies) >= 5
    assert scored > 0, "no sensorwatch_windows_scored on the standalone cluster's reporter"
    labelled = {lab.sensor for lab in fleet.labels}
    # the world's untrained device is scored by its tags' fleet priors (tests/jobs/test_pipeline_e2e.py)
    assert all(
        r["model_name"].startswith("packed-" if r["status"] == "scored" else "_prior~") and r["score"] > r["threshold"]
        for r in anomalies
    )
    assert {r["status"] for r in anomalies} <= {"scored", "prior"}
    assert {r["sensor"] for r in anomalies} & labelled
