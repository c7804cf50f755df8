"""The fleet prior's normalisation: training's (a sensor's windows at once) and scoring's
(window by window, many sensors interleaved) are one definition."""

from __future__ import annotations

import numpy as np

from sensorwatch.core.prior import OnlineNormaliser, normalise_series, prior_model_name, tag_of
from sensorwatch.core.windows import SensorSeries, model_name, sequences


def _series(sensor: str, level: float, spread: float, seed: int, n: int = 300) -> SensorSeries:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    mean = level + spread * np.sin(2 * np.pi * t / 50) + rng.normal(0, spread / 10, n)
    return SensorSeries(sensor, 5_000 * (t + 1), mean, np.full(n, spread / 5), np.full(n, 5.0))


def test_online_equals_training_and_levels_vanish():
    a = sequences(_series("d1/temperature", 20.0, 1.0, 1), 12)[0]
    b = sequences(_series("d2/temperature", 80.0, 8.0, 2), 12)[0]
    want_a, want_b = normalise_series(a), normalise_series(b)
    norm = OnlineNormaliser()
    got_a, got_b = [], []
    # the two sensors' windows interleaved, in batches of uneven size, as the job's worker sees them
    i = 0
    for size in [1, 7, 3, 30, 50] * 20:
        if i >= len(a):
            break
        rows = list(range(i, min(i + size, len(a))))
        X = np.concatenate([a[rows], b[rows]])
        Z = norm.normalise(["d1/temperature"] * len(rows) + ["d2/temperature"] * len(rows), X)
        got_a.append(Z[: len(rows)])
        got_b.append(Z[len(rows) :])
        i += size
    np.testing.assert_allclose(np.concatenate(got_a), want_a, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(got_b), want_b, rtol=1e-5, atol=1e-5)
    # two sensors four times apart in level and eight in spread look alike once normalised
    late = slice(len(a) // 2, None)
    for Z in (want_a, want_b):
        assert abs(float(Z[late, :, 0].mean())) < 0.3 and 0.5 < float(Z[late, :, 0].std()) < 2.0
        np.testing.assert_allclose(Z[..., 2], 1.0, rtol=1e-6)
    norm.forget(["d1/temperature"])
    assert list(norm.state) == ["d2/temperature"]


def test_a_constant_sensor_does_not_divide_by_zero():
    X = np.stack([np.full((5, 4), 3.0), np.zeros((5, 4)), np.full((5, 4), 2.0)], -1)
    Z = normalise_series(X)
    assert np.isfinite(Z).all() and np.allclose(Z[..., 0], 0.0)


def test_prior_names_never_collide_with_a_sensor_model():
    assert prior_model_name(tag_of("dev-0001/pressure")) == "_prior~pressure"
    # a model of a sensor or a device starts with its device's id: a letter or a digit
    assert not model_name("prior/pressure").startswith("_")
