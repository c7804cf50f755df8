"""Kind hints read from a window's shape: each rule on the window it is written for."""

from __future__ import annotations

import numpy as np
import pytest

from sensorwatch.core.explain import HINTS, explain
from sensorwatch.core.windows import FEATURES

S = 16


def _window(rng) -> np.ndarray:
    w = np.empty((S, len(FEATURES)))
    w[:, 0] = 10.0 + rng.normal(0, 0.1, S)
    w[:, 1] = 1.0 + rng.normal(0, 0.05, S)
    w[:, 2] = 60.0
    return w


def _spike(w):
    w[9, 0] += 30.0


def _shift(w):
    w[10:, 0] += 30.0


def _stuck(w):
    w[12:, 1] = 0.0
    w[12:, 0] = w[11, 0]


def _dropout(w):
    w[14, 2] = 12.0


def _noise(w):
    w[13, 1] = 8.0


@pytest.mark.parametrize(
    "change,hint,feature",
    [
        (_spike, "spike", "values"),
        (_shift, "level_shift", "values"),
        (_stuck, "stuck", None),
        (_dropout, "dropout", "count"),
        (_noise, "noise", "stddev"),
    ],
)
def test_each_kind_of_change_gets_its_hint(change, hint, feature):
    rng = np.random.default_rng(3)
    w = _window(rng)
    change(w)
    step, feat, h = explain(w[None], None)
    assert HINTS[int(h[0])] == hint
    if feature is not None:
        assert FEATURES[int(feat[0])] == feature


def test_the_model_attributes_the_step_and_a_normal_window_gets_no_hint():
    rng = np.random.default_rng(4)
    w = _window(rng)
    err = np.zeros((1, S))
    err[0, 5] = 1.0
    step, _feat, h = explain(w[None], err)
    assert int(step[0]) == 5 and HINTS[int(h[0])] == ""
    assert [a.size for a in explain(np.empty((0, S, len(FEATURES))), None)] == [0, 0, 0]


def _err(kind: str) -> np.ndarray:
    e = np.full(S, 0.01)
    if kind == "one":
        e[7] = 5.0
    elif kind == "held":
        e[10:] = 5.0
    elif kind == "busy":
        e[:] = np.linspace(2.0, 5.0, S)
    elif kind == "scattered":
        e[[3, 9]] = [2.0, 5.0]
    return e


@pytest.mark.parametrize(
    "z,err,hint,feature",
    [
        ((0.1, 0.2, -6.0), "one", "dropout", "count"),
        ((0.1, -6.0, 0.0), "held", "stuck", "stddev"),
        ((6.0, 9.0, 0.0), "one", "spike", "values"),  # the mean is named even with a larger spread z
        ((-6.0, 1.0, 0.0), "held", "level_shift", "values"),
        ((0.5, 7.0, 0.0), "busy", "noise", "stddev"),
        ((0.5, 7.0, 0.0), "scattered", "spike", "stddev"),
        ((0.5, 1.0, -1.0), "one", "", None),
    ],
)
def test_the_model_explains_itself_when_it_reports_its_view(z, err, hint, feature):
    w = _window(np.random.default_rng(5))
    step, feat, h = explain(w[None], _err(err)[None], np.asarray([z]))
    assert HINTS[int(h[0])] == hint and int(step[0]) == int(np.argmax(_err(err)))
    if feature is not None:
        assert FEATURES[int(feat[0])] == feature
