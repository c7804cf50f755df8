"""The job's SQL windows equal :mod:`sensorwatch.core.windows` (what training uses), on the same readings.

Readings go through real Kafka into the job's own SQL (``sensorwatch.jobs.sql``: TUMBLE, ``count_window(...) OVER
ROWS``, the slide rule, ``pack_windows``) on a Flink mini-cluster; the batches are decoded by
``sensorwatch.udfs.batch`` and compared with ``sequences(aggregate_readings(...))`` window by window.
Gaps (tumbling windows without readings) and a slide of 2 are part of the input.

The readings go out in event-time order across sensors, as a live fleet sends them. They once
went sensor by sensor, and keys d2 and d3 share partition 2 of 4, so d3's whole history sat
behind d2's last reading in that partition: two minutes out of order against the job's 2 s
bound. Whenever a periodic watermark fell between the two (about one run in seven, each time
with a producer retry on that new partition), d3's first minute went to the late side output
(the source had read all 772 records, the watermark stood past the end, 59 d3 windows were
missing) and the loop below waited forever. It now has a deadline, and the failure says which
windows are missing and where the job's records and watermarks stood.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

from sensorwatch.app import local
from sensorwatch.core.jars import fetch, flink_jars
from sensorwatch.core.kafka import producer
from sensorwatch.core.windows import aggregate_readings, sequences
from sensorwatch.jobs.metrics import task_metrics, task_times
from sensorwatch.jobs.sql import statements
from sensorwatch.udfs.batch import decode

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml

DEADLINE_S = 150  # the windows come in ~10 s; a deadline turns a stall into a failure that says why


def _records_read(rest_port: int, job_id: str, want: int, timeout_s: float = 30) -> int:
    """The readings source's record count, polled until it is ``want`` or ``timeout_s`` passes:
    Flink's REST metrics trail the job by up to their 10 s fetch interval."""
    until, read = time.monotonic() + timeout_s, -1
    while read != want and time.monotonic() < until:
        tasks = task_metrics(rest_port, job_id)
        read = next(int(m.get("numRecordsIn", -1)) for name, m in tasks.items() if name.startswith("Source: readings"))
        time.sleep(0 if read == want else 1)
    return read


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
    rows.sort(key=lambda r: r[1])  # event-time order across sensors, as a live fleet sends them
    p = producer(s.kafka, acks="all")
    for sensor, t, v in rows:
        dev, tag = sensor.split("/")
        p.send(
            s.kafka.topics.readings,
            json.dumps({"device": dev, "tag": tag, "ts": t, "value": v}).encode(),
            key=dev.encode(),
            timestamp_ms=t,
        )
    p.flush(30)
    p.close()
    flushed = local.flush_watermark(s, t0 + 200_000)

    fetch()
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("pipeline.jars", ";".join(j.resolve().as_uri() for j in flink_jars()))
    env.get_config().set("parallelism.default", "1")
    with socket.socket() as so:  # the mini-cluster's REST API, for the watchdog's diagnosis
        so.bind(("127.0.0.1", 0))
        rest_port = so.getsockname()[1]
    env.get_config().set("rest.port", str(rest_port))
    sql = statements(s)
    for stmt in sql["ddl"] + sql["views"]:
        env.execute_sql(stmt)

    expected = {}
    aggs = aggregate_readings(
        np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), 1000
    )
    for sensor, series in aggs.items():
        X, ends = sequences(series, 4, slide, 1000)
        for x, e in zip(X, ends):
            expected[(sensor, int(e))] = x
    assert len(expected) > 100

    got = {}
    result = env.execute_sql("SELECT shard, batch_end, batch FROM batches")
    client = result.get_job_client()
    diagnosis: dict = {}

    def stop() -> None:  # the stream is unbounded: at the deadline, record why and end it
        try:
            diagnosis.update(task_metrics(rest_port, str(client.get_job_id())))
        finally:
            diagnosis["deadline"] = True
            client.cancel()

    watchdog = threading.Timer(DEADLINE_S, stop)
    watchdog.start()
    read = None
    try:
        with result.collect() as rows_iter:  # closing it cancels the job: metrics are read inside
            for row in rows_iter:
                b = decode(row[2])
                assert (b.end == row[1]).all(), "a batch holds the windows of one event time"
                for i, sensor in enumerate(b.sensors):
                    got[(sensor, int(b.end[i]))] = (b.features[i], int(b.start[i]))
                if len(got) >= len(expected):
                    break
            read = _records_read(rest_port, str(client.get_job_id()), len(rows) + flushed)
            times = task_times(rest_port, str(client.get_job_id()), wait_s=30)
    except Exception as e:  # the watchdog's cancel ends the iterator with the job's failure
        if "deadline" not in diagnosis:
            raise
        missing = sorted(set(expected) - set(got))
        pytest.fail(
            f"after {DEADLINE_S} s, {len(missing)} of {len(expected)} windows never came, e.g. {missing[:3]}; "
            f"t0={t0}; job metrics {diagnosis}; ended by {e!r:.300}"
        )
    finally:
        watchdog.cancel()
    assert read == len(rows) + flushed, ("the source read", read, "of", len(rows), "readings and", flushed, "flushes")
    # every stage's time split, as bench/pipeline.py reads it: each a share of a second
    assert times and all(len(t) == 3 for t in times.values()), times
    assert all(0.0 <= v <= 1050.0 for t in times.values() for v in t.values()), times
    assert set(got) == set(expected), (sorted(set(expected) ^ set(got))[:5], diagnosis)
    for key, x in expected.items():
        feats, start = got[key]
        np.testing.assert_allclose(feats, x, rtol=1e-5, atol=1e-5, err_msg=str(key))
        assert start == aggs[key[0]].window_end[np.searchsorted(aggs[key[0]].window_end, key[1]) - 3] - 1000


def test_count_window_refuses_a_row_past_its_length_without_a_retract():
    """``count_window`` is a ring of S slots for ``OVER (ROWS S-1 PRECEDING)``, where Flink
    retracts the oldest row before it adds the next. Used where nothing retracts (a plain GROUP
    BY of S + 1 rows), the ring would have to drop a window silently; it refuses, by name."""
    from sensorwatch.jobs.pipeline import function_env

    env = function_env("count_window")
    full = "SELECT count_window(s, m, d, c, 2) FROM (VALUES (0, 1.0, 0.5, 3), (5000, 2.0, 0.5, 4)) AS t(s, m, d, c)"
    with env.execute_sql(full).collect() as rows:
        (window,) = [r[0] for r in rows]
    assert int(np.frombuffer(bytes(window), "<i8", count=1)[0]) == 0  # the first window's start
    features = np.frombuffer(bytes(window), "<f8", offset=8).tolist()
    assert features == [1.0, 2.0, 0.5, 0.5, 3.0, 4.0]  # means, stddevs, counts: oldest first
    over = full.replace("(5000, 2.0, 0.5, 4))", "(5000, 2.0, 0.5, 4), (10000, 3.0, 0.5, 5))")
    with pytest.raises(Exception, match="got its next row before its oldest was retracted"):
        with env.execute_sql(over).collect() as rows:
            list(rows)
