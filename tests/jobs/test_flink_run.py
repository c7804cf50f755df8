"""``flink run -py jobs/anomaly_job.py`` on a standalone cluster from the wheel's own scripts."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from jobworld import fresh_topics
from sensorwatch.app import local
from sensorwatch.app.standalone import REPO, StandaloneCluster
from sensorwatch.core.config import json_value
from sensorwatch.simulate import Fleet, simulate

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def test_flink_run_py_on_standalone_cluster(world, tmp_path):
    s = fresh_topics(world)
    s.simulator.duration_s = 900.0
    s.simulator.speed = 120.0
    s.job.python_executable = sys.executable
    conf = tmp_path / "sensorwatch.yaml"
    conf.write_text(yaml.safe_dump(json.loads(json.dumps(s.model_dump(mode="python"), default=json_value))))
    cluster = StandaloneCluster(tmp_path / "flink").start()
    try:
        res = cluster.run_py(REPO / "jobs" / "anomaly_job.py", "--config", str(conf))
        assert res.returncode == 0, "\n".join(
            ln for ln in (res.stdout + res.stderr).splitlines() if "Caused by" in ln or "Exception" in ln
        )[-3000:]
        assert "Job has been submitted with JobID" in res.stdout
        fleet = Fleet(s.simulator)
        simulate(s.simulator, s.kafka, fleet=fleet)
        local.flush_watermark(s, fleet.end_ms + 120_000)
        anomalies = local.consume(s, s.kafka.topics.anomalies, lambda r: len(r) >= 5, 120)
    finally:
        cluster.stop()
    assert len(anomalies) >= 5
    labelled = {lab.sensor for lab in fleet.labels}
    assert all(r["model_name"].startswith("packed-") and r["score"] > r["threshold"] for r in anomalies)
    assert {r["sensor"] for r in anomalies} & labelled
