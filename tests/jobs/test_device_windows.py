"""The job's device windows equal :func:`sensorwatch.core.windows.device_sequences` (what device
models train on), on the same readings, and both kinds of model run side by side in one job.

Readings of two pumps (device models, ``serving.device_models``) and one plain device (sensor
models) go through real Kafka into the job's own SQL on a Flink mini-cluster: the cascaded
TUMBLE with ``device_vector``, ``ARRAY_AGG ... OVER ROWS`` per device and
``pack_device_windows``. The batches are decoded by ``sensorwatch.udfs.batch`` and compared with
the Python rule window by window. One pump's ``power`` tag is silent in some tumbling windows
(missing there: NaN, imputed by the model) and absent from the pump's first seconds altogether.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from sensorwatch.app import local
from sensorwatch.core.jars import fetch, flink_jars
from sensorwatch.core.kafka import producer
from sensorwatch.core.windows import aggregate_readings, device_sequences, device_series, sequences
from sensorwatch.jobs.sql import statements
from sensorwatch.udfs.batch import DeviceBatch, decode

pytestmark = pytest.mark.integration

DEADLINE_S = 150
S = 4


def _readings(t0: int) -> list[tuple[str, int, float]]:
    rng = np.random.default_rng(3)
    rows = []
    for sensor in ("pump-a/flow", "pump-a/power", "pump-b/flow", "pump-b/pressure", "plain/temperature"):
        ts = t0 + np.sort(rng.choice(90_000, 200, replace=False))
        if sensor == "pump-a/power":
            ts = ts[(ts - t0 >= 6_000) & ((ts - t0) // 1000 % 5 != 2)]  # late to start, silent every 5th second
        rows += [(sensor, int(t), float(v)) for t, v in zip(ts, rng.normal(10, 2, ts.size))]
    rows.sort(key=lambda r: r[1])
    return rows


def test_sql_device_windows_equal_python_device_windows(settings):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    s = settings
    s.job.seq_len, s.job.window_s, s.job.start_from = S, 1.0, "earliest"
    s.serving.device_models = "pump-*"
    t0 = (int(time.time() * 1000) - 600_000) // 60_000 * 60_000
    rows = _readings(t0)
    p = producer(s.kafka, acks="all")
    for sensor, t, v in rows:
        dev, tag = sensor.split("/")
        payload = json.dumps({"device": dev, "tag": tag, "ts": t, "value": v}).encode()
        p.send(s.kafka.topics.readings, payload, key=dev.encode(), timestamp_ms=t)
    p.flush(30)
    p.close()
    local.flush_watermark(s, t0 + 200_000)

    aggs = aggregate_readings(
        np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), 1000
    )
    expected_devices = {}
    for name, ds in device_series({k: v for k, v in aggs.items() if k.startswith("pump-")}).items():
        X, ends = device_sequences(ds, S, 1, 1000)
        for k, (x, e) in enumerate(zip(X, ends)):
            # (a window spans tumbling windows in which the whole device was silent, as ROWS does)
            expected_devices[(name, int(e))] = (ds.tags, x, int(ds.window_end[k]) - 1000)
    expected_sensors = set()
    X, ends = sequences(aggs["plain/temperature"], S, 1, 1000)
    expected_sensors = {("plain/temperature", int(e)) for e in ends}
    assert any(np.isnan(x).any() for _, x, _ in expected_devices.values()), "the input must hold missing tags"

    fetch()
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("pipeline.jars", ";".join(j.resolve().as_uri() for j in flink_jars()))
    env.get_config().set("parallelism.default", "1")
    sql = statements(s)
    for stmt in sql["ddl"] + sql["views"]:
        env.execute_sql(stmt)

    got_devices, got_sensors = {}, set()
    want = len(expected_devices) + len(expected_sensors)
    result = env.execute_sql("SELECT shard, batch_end, batch FROM batches")
    client = result.get_job_client()
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        client.cancel()

    watchdog = threading.Timer(DEADLINE_S, stop)
    watchdog.start()
    try:
        with result.collect() as it:
            for row in it:
                b = decode(row[2])
                assert (b.end == row[1]).all(), "a batch holds the windows of one event time"
                if isinstance(b, DeviceBatch):
                    for i, dev in enumerate(b.devices):
                        got_devices[(dev, int(b.end[i]))] = (list(b.tags[i]), b.features[i], int(b.start[i]))
                else:
                    got_sensors.update((sensor, int(e)) for sensor, e in zip(b.sensors, b.end))
                if len(got_devices) + len(got_sensors) >= want:
                    break
    except Exception:
        if not timed_out.is_set():
            raise
        missing = sorted(set(expected_devices) - set(got_devices))
        pytest.fail(f"after {DEADLINE_S} s, {len(missing)} device windows never came, e.g. {missing[:3]}")
    finally:
        watchdog.cancel()
    assert got_sensors == expected_sensors, "the pumps' sensors take the device path only"
    assert set(got_devices) == set(expected_devices), sorted(set(got_devices) ^ set(expected_devices))[:5]
    for key, (tags, x, first_start) in expected_devices.items():
        got_tags, feats, start = got_devices[key]
        # a window's columns are the tags seen in its S steps: the first windows of pump-a lack power
        cols = [tags.index(t) for t in got_tags if t]
        seen = [c for c in range(len(tags)) if np.isfinite(x[:, c]).any()]
        assert cols == seen, (key, got_tags, tags)
        np.testing.assert_allclose(feats[:, : len(cols)], x[:, cols], rtol=1e-6, atol=1e-6, err_msg=str(key))
        assert np.isnan(feats[:, len(cols) :]).all(), "padding columns are missing throughout"
        assert start == first_start
