"""Training data from the aggregates topic (seek by time) and from files (SKAB included)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sensorwatch.core.contracts import aggregate_record
from sensorwatch.core.kafka import producer
from sensorwatch.core.paths import skab_dir
from sensorwatch.training.data import from_files, from_kafka, select

T0 = 1_700_000_000_000


def test_from_kafka_seeks_by_time_and_drops_repeats(settings):
    topic = settings.kafka.topics.aggregates
    p = producer(settings.kafka)
    for i in range(100):
        end = T0 + (i + 1) * 5000
        for sensor in ("d1/temperature", "d2/pressure"):
            rec = aggregate_record(sensor, end - 5000, end, float(i), 0.5, 5)
            p.send(topic, json.dumps(rec).encode(), key=sensor.encode(), timestamp_ms=end)
            if i % 10 == 0:  # at-least-once repeats
                p.send(topic, json.dumps(rec).encode(), key=sensor.encode(), timestamp_ms=end)
    p.flush()
    p.close()
    got = from_kafka(settings.kafka, topic, ts_from=T0 + 20 * 5000, ts_to=T0 + 60 * 5000, idle_timeout_s=2)
    assert sorted(got) == ["d1/temperature", "d2/pressure"]
    s = got["d1/temperature"]
    np.testing.assert_array_equal(s.window_end, T0 + np.arange(20, 60) * 5000)
    np.testing.assert_array_equal(s.mean, np.arange(19, 59))
    assert (s.stddev == 0.5).all() and (s.count == 5).all()
    only = from_kafka(settings.kafka, topic, pattern="d2/*", idle_timeout_s=2)
    assert list(only) == ["d2/pressure"] and len(only["d2/pressure"]) == 100


def test_from_files_aggregates_readings_and_parquet(tmp_path):
    import pandas as pd

    pd.DataFrame(
        {
            "sensor": ["a/x"] * 3,
            "window_end": [5000, 10000, 15000],
            "mean": [1.0, 2.0, 3.0],
            "stddev": [0.1] * 3,
            "count": [5] * 3,
        }
    ).to_csv(tmp_path / "agg.csv", index=False)
    pd.DataFrame(
        {"device": ["b"] * 10, "tag": ["y"] * 10, "ts": np.arange(10) * 1000, "value": np.arange(10.0)}
    ).to_parquet(tmp_path / "raw.parquet")
    got = from_files([tmp_path / "agg.csv", tmp_path / "raw.parquet"], window_ms=5000)
    np.testing.assert_array_equal(got["a/x"].mean, [1, 2, 3])
    b = got["b/y"]
    np.testing.assert_array_equal(b.window_end, [5000, 10000])
    np.testing.assert_array_equal(b.mean, [2.0, 7.0])
    np.testing.assert_array_equal(b.count, [5, 5])
    (tmp_path / "bad.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match="neither"):
        from_files([tmp_path / "bad.csv"], 5000)


def test_from_files_reads_skab():
    f = skab_dir() / "valve1" / "0.csv"
    got = from_files([f], window_ms=5000)
    assert len(got) == 8 and all(s.startswith("skab-0/") for s in got)
    s = got["skab-0/Temperature"]
    assert len(s) > 100 and (s.count <= 5).all() and np.isfinite(s.mean).all()


def test_select():
    names = ["a/x", "a/y", "b/x"]
    assert select(names, None) == names
    assert select(names, "a/*") == ["a/x", "a/y"]
    assert select(names, "*/x, a/y") == ["a/x", "a/y", "b/x"]
