from __future__ import annotations

import numpy as np
import pytest

from sensorwatch.training.calibrate import (
    CalibrationError,
    ThresholdRule,
    far_threshold,
    fit_threshold,
    plot_roc,
    plot_scores,
    quantile_threshold,
    roc_curve,
)


def test_quantile_threshold_rules():
    s = np.arange(1001, dtype=float)  # 0..1000
    assert quantile_threshold(s, 0.99, 1.5) == pytest.approx(990 * 1.5)
    signed = s - 500  # median 0
    assert quantile_threshold(signed, 0.99, 1.5, nonnegative=False) == pytest.approx(490 + 0.5 * 490)
    with pytest.raises(ValueError):
        quantile_threshold(np.array([1.0, np.nan]), 0.9, 1.0)


def test_roc_and_far_threshold():
    rng = np.random.default_rng(0)
    normal = rng.normal(0, 1, 5000)
    anomalous = rng.normal(4, 1, 500)
    scores = np.concatenate([normal, anomalous])
    y = np.concatenate([np.zeros(5000, bool), np.ones(500, bool)])
    far, tpr, thr = roc_curve(scores, y)
    assert np.all(np.diff(far) >= 0) and np.all(np.diff(tpr) >= 0)
    t = far_threshold(scores, y, 0.01)
    assert (normal > t).mean() <= 0.01
    assert (normal > np.nextafter(t, -np.inf)).mean() > 0.0099  # the lowest such threshold
    assert (anomalous > t).mean() > 0.8
    with pytest.raises(ValueError, match="both"):
        roc_curve(scores, np.zeros_like(y))


def test_plots_are_pngs(tmp_path):
    rng = np.random.default_rng(0)
    s = rng.normal(size=200)
    y = s > 1.5
    plot_roc(tmp_path / "roc.png", s, y, 1.0, "x")
    plot_scores(tmp_path / "s.png", np.arange(200) * 5000, s, 1.0, "x")
    for f in ("roc.png", "s.png"):
        assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_threshold_returns_the_rule_that_chose_it():
    rng = np.random.default_rng(0)
    normal, anomalous = rng.normal(0, 1, 2000), rng.normal(5, 1, 100)
    scores = np.concatenate([normal, anomalous])
    y = np.concatenate([np.zeros(2000, bool), np.ones(100, bool)])
    # labels with both classes and a target: the ROC rule
    thr, rule = fit_threshold(scores, quantile=0.99, margin=1.5, labels=y, target_far=0.01, nonnegative=False)
    assert rule == ThresholdRule("far", target_far=0.01, windows=2100) and thr == far_threshold(scores, y, 0.01)
    assert rule.describe().startswith("ROC")
    # the same labels without a target: the quantile rule on the normal windows only
    thr, rule = fit_threshold(scores, quantile=0.99, margin=1.5, labels=y, nonnegative=False)
    assert rule.kind == "quantile" and thr == quantile_threshold(normal, 0.99, 1.5, nonnegative=False)
    # no labels, or a single class: every window counts
    assert fit_threshold(scores, quantile=0.99, margin=1.5)[0] == quantile_threshold(scores, 0.99, 1.5)
    only_anomalous = np.ones_like(y)
    assert fit_threshold(scores, quantile=0.9, margin=1.0, labels=only_anomalous, target_far=0.01)[0] == (
        quantile_threshold(scores, 0.9, 1.0)
    )
    assert rule.to_dict() == {
        "kind": "quantile",
        "quantile": 0.99,
        "margin": 1.5,
        "target_far": None,
        "nonnegative": False,
        "windows": 2000,
        "fallback": None,
        "flags": (),
    }


def test_few_validation_windows_fall_back_to_the_maximum_and_say_so():
    s = np.linspace(0.1, 1.0, 40)  # 40 windows: a 0.995 quantile needs 200
    thr, rule = fit_threshold(s, quantile=0.995, margin=1.5)
    assert thr == pytest.approx(1.0 * 1.5) and rule.quantile == 1.0 and rule.windows == 40
    assert "only 40 validation windows; quantile 0.995 needs 200" in rule.fallback
    assert "fallback" in rule.describe()
    enough = np.linspace(0.1, 1.0, 400)
    thr, rule = fit_threshold(enough, quantile=0.995, margin=1.5)
    assert rule.fallback is None and thr == pytest.approx(quantile_threshold(enough, 0.995, 1.5))
    # a published protocol's rule can be kept as it is, whatever the count
    assert fit_threshold(s, quantile=0.995, margin=1.5, min_windows=0)[1].fallback is None


def test_untrustworthy_thresholds_are_refused_or_flagged():
    with pytest.raises(CalibrationError, match="all 300 validation windows score 0"):
        fit_threshold(np.zeros(300), quantile=0.995, margin=1.5)
    with pytest.raises(CalibrationError, match="flags 70% of the normal validation windows"):
        fit_threshold(np.arange(1000.0), quantile=0.3, margin=1.0)
    with pytest.raises(CalibrationError, match="finite"):
        fit_threshold(np.array([1.0, 2.0, np.inf] * 100), quantile=0.5, margin=1.0, min_windows=0)
    _, rule = fit_threshold(np.r_[np.zeros(990), np.full(10, 0.01)], quantile=0.99, margin=1e5, nonnegative=False)
    assert rule.flags and "over 100x the largest validation score" in rule.flags[0]
