"""The job's SQL windows equal :mod:`sensorwatch.windows` (what training uses), on the same readings.

Readings go through real Kafka into the job's own SQL (``jobs.sql``: TUMBLE, ``ARRAY_AGG ... OVER
ROWS``, the slide rule, ``pack_windows``) on a Flink mini-cluster; the batches are decoded by
``udfs.batch`` and compared with ``sequences(aggregate_readings(...))`` window by window.
Gaps (tumbling windows without readings) and a slide of 2 are part of the input.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from jobs import local
from jobs.sql import statements
from sensorwatch.jars import fetch, flink_jars
from sensorwatch.kafka_clients import producer
from sensorwatch.windows import aggregate_readings, sequences
from udfs.batch import decode


@pytest.mark.parametrize("slide", [1, 2])
def test_sql_count_windows_equal_python_windows(settings, slide):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    s = settings
    s.job.seq_len, s.job.slide, s.job.window_s, s.job.start_from = 4, slide, 1.0, "earliest"
    rng = np.random.default_rng(slide)
    t0 = (int(time.time() * 1000) - 600_000) // 60_000 * 60_000
    rows = []
    for sensor in ("d1/temperature", "d2/pressure", "d3/vibration"):
        ts = t0 + np.sort(rng.choice(120_000, 300, replace=False))  # 2 minutes, uneven, with gaps
        ts = ts[(ts - t0) // 1000 % 7 != 3]  # every 7th second empty: ROWS windows span the gap
        rows += [(sensor, int(t), float(v)) for t, v in zip(ts, rng.normal(10, 2, ts.size))]
    p = producer(s.kafka, acks="all")
    for sensor, t, v in rows:
        dev, tag = sensor.split("/")
        p.send(s.kafka.topics.readings, json.dumps({"device": dev, "tag": tag, "ts": t, "value": v}).encode(),
               key=dev.encode(), timestamp_ms=t)
    p.flush(30)
    p.close()
    local.flush_watermark(s, t0 + 200_000)

    fetch()
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("pipeline.jars", ";".join(j.resolve().as_uri() for j in flink_jars()))
    env.get_config().set("parallelism.default", "1")
    sql = statements(s)
    for stmt in sql["ddl"] + sql["views"]:
        env.execute_sql(stmt)

    expected = {}
    aggs = aggregate_readings(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                              np.array([r[2] for r in rows]), 1000)
    for sensor, series in aggs.items():
        X, ends = sequences(series, 4, slide, 1000)
        for x, e in zip(X, ends):
            expected[(sensor, int(e))] = x
    assert len(expected) > 100

    got = {}
    result = env.execute_sql("SELECT shard, batch_end, batch FROM batches")
    with result.collect() as rows_iter:
        for row in rows_iter:
            b = decode(row[2])
            assert (b.end == row[1]).all(), "a batch holds the windows of one event time"
            for i, sensor in enumerate(b.sensors):
                got[(sensor, int(b.end[i]))] = (b.features[i], int(b.start[i]))
            if len(got) >= len(expected):
                break
    result.get_job_client().cancel()
    assert set(got) == set(expected)
    for key, x in expected.items():
        feats, start = got[key]
        np.testing.assert_allclose(feats, x, rtol=1e-5, atol=1e-5, err_msg=str(key))
        assert start == aggs[key[0]].window_end[np.searchsorted(aggs[key[0]].window_end, key[1]) - 3] - 1000
