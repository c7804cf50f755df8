"""The byte batch between the JVM (pack_windows) and Python: layout and its errors.

The JVM side is exercised end to end by tests/jobs/test_count_windows.py; here the decoder's
own guarantees.
"""

import numpy as np
import pytest

from sensorwatch.udfs.batch import WindowBatch, decode, encode


def test_round_trip():
    rng = np.random.default_rng(0)
    b = WindowBatch(
        ["d1/temperature", "d2/pressure", "d3/x.y-z"],
        np.array([1, 2, 3]),
        np.array([4, 5, 6]),
        np.array([7, 8, 9]),
        rng.normal(size=(3, 16, 3)),
    )
    d = decode(encode(b))
    assert d.sensors == b.sensors
    for name in ("start", "end", "closed", "features"):
        np.testing.assert_array_equal(getattr(d, name), getattr(b, name))
    t = d.take([2, 0])
    assert t.sensors == ["d3/x.y-z", "d1/temperature"] and t.end.tolist() == [6, 4]


def test_empty_batch():
    assert len(decode(encode(WindowBatch([], np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, 4, 3)))))) == 0


@pytest.mark.parametrize("cut", [3, 20, 100])
def test_truncated_batch_is_a_clear_error(cut):
    b = WindowBatch(["a/b", "c/d"], np.array([1, 2]), np.array([3, 4]), np.array([5, 6]), np.ones((2, 4, 3)))
    raw = encode(b)
    with pytest.raises(ValueError, match="window batch"):
        decode(raw[:cut])


def test_device_batch_round_trip_with_padding_and_missing_steps():
    from sensorwatch.udfs.batch import DeviceBatch, decode_devices, encode_devices

    rng = np.random.default_rng(1)
    feats = rng.normal(size=(2, 4, 3, 3))
    feats[0, 1, 2] = np.nan  # a tag without a reading in one step
    feats[1, :, 2] = np.nan  # padding: the second window has two tags
    tags = np.array([["flow", "power", "speed"], ["flow", "power", ""]], dtype=object)
    b = DeviceBatch(["pump-1", "pump-2"], np.array([1, 2]), np.array([3, 4]), np.array([5, 6]), tags, feats)
    d = decode(encode_devices(b))
    assert isinstance(d, DeviceBatch) and d.devices == d.sensors == ["pump-1", "pump-2"]
    assert d.tags.tolist() == tags.tolist()
    np.testing.assert_array_equal(d.features, feats)
    for name in ("start", "end", "closed"):
        np.testing.assert_array_equal(getattr(d, name), getattr(b, name))
    with pytest.raises(ValueError, match="device batch"):
        decode_devices(encode_devices(b)[:40])


def test_score_rows_carry_a_device_models_drivers():
    from sensorwatch.udfs.batch import SCORE_COLUMNS, ScoreBatch, decode_scores, encode_scores

    cols = {c: np.arange(2) + k for k, c in enumerate(SCORE_COLUMNS)}
    b = ScoreBatch(["pump-1", "d/t"], ["pump-1", "packed-001"], cols, ["speed:0.700,flow:0.300", ""])
    d = decode_scores(encode_scores(b))
    assert d.sensors == b.sensors and d.models == b.models and d.drivers == b.drivers
    assert d.per_step_error is None
    for c in SCORE_COLUMNS:
        np.testing.assert_array_equal(d.cols[c], cols[c])
    assert decode_scores(encode_scores(ScoreBatch(["d/t"], ["m"], {c: v[:1] for c, v in cols.items()}))).drivers == [""]


def test_score_rows_carry_per_step_errors_with_nan_for_none():
    """Each window's per-step errors travel with its scores; a NaN row is a model that gave none."""
    from sensorwatch.udfs.batch import SCORE_COLUMNS, ScoreBatch, decode_scores, encode_scores

    pse = np.array([[0.5, 1.5, 2.5], [np.nan, np.nan, np.nan]])
    b = ScoreBatch(["a/x", "b/y"], ["m", "m"], {c: np.arange(2) for c in SCORE_COLUMNS}, None, pse)
    d = decode_scores(encode_scores(b))
    np.testing.assert_array_equal(d.per_step_error, pse)
    with pytest.raises(ValueError, match="without sensor, model"):
        decode_scores(encode_scores(b)[:-4])
    with pytest.raises(ValueError, match="cannot hold"):
        decode_scores(encode_scores(b)[:60])
