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
