"""The count-window and tumbling rules shared by the trainer and the job."""

from __future__ import annotations

import numpy as np
import pytest

from sensorwatch.core.windows import (
    FEATURES,
    SensorSeries,
    aggregate_readings,
    device_model_name,
    device_sequences,
    device_series,
    keep_window,
    matches,
    model_name,
    sensor_of_model,
    sequences,
)


def _series(n: int, step: int = 5000, gaps: tuple[int, ...] = ()) -> SensorSeries:
    ends = np.arange(1, n + 1 + len(gaps), dtype=np.int64) * step
    ends = np.delete(ends, list(gaps))[:n]
    return SensorSeries("d/t", ends, np.arange(n, dtype=float), np.full(n, 0.5), np.full(n, 5.0))


def test_windows_are_consecutive_aggregates_in_order():
    X, ends = sequences(_series(20), seq_len=4)
    assert X.shape == (17, 4, len(FEATURES))
    assert ends[0] == 4 * 5000 and ends[-1] == 20 * 5000
    np.testing.assert_array_equal(X[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(X[-1, :, 0], [16, 17, 18, 19])
    assert (X[:, :, 1] == 0.5).all() and (X[:, :, 2] == 5).all()


def test_a_gap_in_time_does_not_break_a_window_like_sql_rows():
    X, ends = sequences(_series(6, gaps=(2,)), seq_len=3)
    # aggregates end at 5,10,20,25,30,35 s: the window over the gap still has 3 rows
    np.testing.assert_array_equal(ends, [20000, 25000, 30000, 35000])
    np.testing.assert_array_equal(X[0, :, 0], [0, 1, 2])


def test_slide_keeps_windows_by_event_time():
    X, ends = sequences(_series(20), seq_len=4, slide=3, window_ms=5000)
    assert ((ends // 5000) % 3 == 0).all() and list(ends // 5000) == [6, 9, 12, 15, 18]
    assert keep_window(15000, 3, 5000) and not keep_window(20000, 3, 5000)


def test_too_short_series_gives_no_windows():
    X, ends = sequences(_series(3), seq_len=4)
    assert X.shape == (0, 4, 3) and ends.size == 0


def test_series_rejects_unsorted_and_ragged_columns():
    with pytest.raises(ValueError, match="ascending"):
        SensorSeries("a/b", [2, 1], [0, 0], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="length"):
        SensorSeries("a/b", [1, 2], [0], [0, 0], [1, 1])


def test_aggregate_readings_matches_a_naive_tumbling_window():
    rng = np.random.default_rng(1)
    ts = rng.integers(0, 60_000, 500)
    sensors = rng.choice(["a/x", "b/y"], 500)
    vals = rng.normal(10, 2, 500)
    agg = aggregate_readings(sensors, ts, vals, 5000)
    for s in ("a/x", "b/y"):
        ser = agg[s]
        for end, mean, sd, count in zip(ser.window_end, ser.mean, ser.stddev, ser.count):
            m = (sensors == s) & (ts // 5000 == end // 5000 - 1)
            assert count == m.sum()
            assert mean == pytest.approx(vals[m].mean(), rel=1e-12)
            assert sd == pytest.approx(vals[m].std(), rel=1e-6, abs=1e-9)


def test_model_names_per_sensor_and_packed():
    assert model_name("dev-1/temperature") == "dev-1~temperature"
    assert sensor_of_model("dev-1~temperature") == "dev-1/temperature"
    names = {model_name(f"dev-{i}/t", "packed", 4) for i in range(200)}
    assert names == {"packed-000", "packed-001", "packed-002", "packed-003"}
    assert model_name("x/y", "packed", 4) == model_name("x/y", "packed", 4)  # stable across processes
    with pytest.raises(ValueError):
        model_name("x/y", "sharded")


def test_device_series_puts_a_devices_tags_side_by_side_missing_as_nan():
    a = SensorSeries("p/flow", [5000, 10000, 15000], [1.0, 2.0, 3.0], [0.1, 0.2, 0.3], [5, 5, 5])
    b = SensorSeries("p/power", [10000, 20000], [7.0, 8.0], [0.0, 0.0], [4, 4])
    other = SensorSeries("q/flow", [5000], [9.0], [0.0], [1])
    ds = device_series({"p/power": b, "p/flow": a, "q/flow": other})
    p = ds["p"]
    assert p.tags == ["flow", "power"], "a fixed tag order: sorted"
    assert p.window_end.tolist() == [5000, 10000, 15000, 20000], "a step per window in which any tag was read"
    np.testing.assert_array_equal(p.feats[:, 0, 0], [1.0, 2.0, 3.0, np.nan])
    np.testing.assert_array_equal(p.feats[:, 1, 0], [np.nan, 7.0, np.nan, 8.0])
    assert p.feats[1, 1].tolist() == [7.0, 0.0, 4.0]
    X, ends = device_sequences(p, 2)
    assert X.shape == (3, 2, 2, 3) and ends.tolist() == [10000, 15000, 20000]
    np.testing.assert_array_equal(X[0, :, 1, 0], [np.nan, 7.0])
    assert device_sequences(ds["q"], 2)[0].shape == (0, 2, 1, 3)
    assert len(p.between(10000, 20000)) == 2


def test_device_model_names_and_selectors():
    assert device_model_name("pump-01") == "pump-01"
    names = {device_model_name(f"pump-{i}", "packed", 4) for i in range(100)}
    assert names == {f"packed-dev-{i:03d}" for i in range(4)}, "apart from the sensor models' packed groups"
    assert matches("pump-01", "dev-*, pump-0?") and not matches("pump-011", "pump-0?")
    assert not matches("pump-01", None) and not matches("pump-01", "")
