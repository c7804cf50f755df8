"""A real Prometheus scrapes the job (Flink's Prometheus reporter on the mini-cluster) and the
model server (TF Serving's metric names) while a fleet streams; PromQL reads the job's
windows-scored rate and the server's request count."""

from __future__ import annotations

import time

import pytest

from jobworld import fresh_topics
from sensorwatch.app import local
from sensorwatch.jobs.pipeline import run
from sensorwatch.simulate import Fleet, simulate
from sensorwatch.stack.kafka_broker import free_port
from sensorwatch.stack.prometheus import PrometheusProcess, scrape_config

pytestmark = pytest.mark.integration

WINDOWS_SCORED = "flink_taskmanager_job_task_operator_sensorwatch_windows_scored"


def test_prometheus_scrapes_the_job_and_the_model_server(world, tmp_path):
    s = fresh_topics(world)
    s.simulator.duration_s = 900.0
    grpc_port, metrics_port = free_port(), free_port()
    s.serving.port, s.serving.target, s.serving.metrics_port = grpc_port, f"127.0.0.1:{grpc_port}", metrics_port
    s.job.metrics_port = str(free_port())
    server = local.ModelServerProcess(s, tmp_path / "server.log").start()
    prom = PrometheusProcess(
        tmp_path / "prometheus",
        free_port(),
        scrape_config(
            {"sensorwatch-job": [f"127.0.0.1:{s.job.metrics_port}"], "model-server": [f"127.0.0.1:{metrics_port}"]},
            interval="1s",
        ),
    ).start()
    job = run(s, detached=True)
    try:
        simulate(s.simulator, s.kafka, fleet=Fleet(s.simulator))
        deadline = time.monotonic() + 120
        rate = []
        while time.monotonic() < deadline:
            rate = prom.query(f"sum(rate({WINDOWS_SCORED}[10s]))")
            if rate and float(rate[0]["value"][1]) > 0:
                break
            time.sleep(1)
        assert rate and float(rate[0]["value"][1]) > 0, (rate, prom.targets_up())
        up = prom.targets_up()
        assert up == {
            f"sensorwatch-job/127.0.0.1:{s.job.metrics_port}": True,
            f"model-server/127.0.0.1:{metrics_port}": True,
        }
        served = prom.query('sum(tensorflow_serving_request_count_total{status="OK"})')
        assert served and float(served[0]["value"][1]) > 0
        loaded = prom.query('count(sensorwatch_serving_model_versions{state="AVAILABLE"})')
        assert loaded and float(loaded[0]["value"][1]) >= 1
    finally:
        job.cancel()
        prom.stop()
        server.stop()
