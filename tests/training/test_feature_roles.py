"""Features that fit the source: one constant in training does not dilute the score, and a
constant count counts only when it falls (a dropout), not when a reading too many arrives."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from sensorwatch.core.config import TrainingConfig
from sensorwatch.training.detectors import ONE_SIDED, feature_use, make_detector, weigh_features

S, F = 16, 3


def test_constant_features_are_dropped_and_a_constant_count_is_one_sided():
    sd = np.array([[2.0, 0.0, 0.0], [2.0, 0.5, 3.0]])
    mean = np.array([[10.0, 0.0, 1.0], [10.0, 1.0, 60.0]])
    use = feature_use(sd, mean)
    assert use.tolist() == [[1.0, 0.0, ONE_SIDED], [1.0, 1.0, 1.0]]


def test_every_tags_constant_count_is_one_sided_in_a_device_layout():
    # two tags, tag-major: (values, stddev, count) x 2; and a device model of means and counts
    sd = np.array([[2.0, 0.5, 0.0, 1.0, 0.0, 0.0]])
    mean = np.array([[10.0, 1.0, 5.0, 3.0, 0.0, 5.0]])
    assert feature_use(sd, mean).tolist() == [[1.0, 1.0, ONE_SIDED, 1.0, 0.0, ONE_SIDED]]
    two = feature_use(sd[:, [0, 2, 3, 5]], mean[:, [0, 2, 3, 5]], ("values", "count"))
    assert two.tolist() == [[1.0, ONE_SIDED, 1.0, ONE_SIDED]]


def test_weighing_ignores_dropped_features_and_counts_only_a_shortfall():
    use = tf.constant([[1.0, 0.0, ONE_SIDED]] * 3)
    err = np.zeros((3, S, F), np.float32)
    err[:, :, 0] = 1.0  # the same error in the used feature
    err[1, :, 1] = 50.0  # a dropped feature's error: ignored
    xn = np.zeros((3, S, F), np.float32)
    xn[1, :, 2] = +4.0  # an extra reading: no evidence
    xn[2, 3, 2] = -4.0  # a shortfall of the count at one step: evidence
    score, per_step, per_feature = (t.numpy() for t in weigh_features(tf.constant(err), tf.constant(xn), use))
    assert score[0] == score[1] == 1.0
    assert per_step[2, 3] == 1.0 + 16.0 and score[2] == (16 * 1.0 + 16.0) / 16
    # what each feature contributed: they sum to the score, a dropped feature gave nothing
    np.testing.assert_allclose(per_feature.sum(axis=1), score, rtol=1e-6)
    assert per_feature[1, 1] == 0.0 and per_feature[2, 2] == 1.0


def test_a_fitted_detector_records_its_roles_and_its_seed_slot():
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(10, 1, (200, S)), np.zeros((200, S)), np.ones((200, S))], axis=-1)
    det = make_detector("dense_ae", 1, S, F, TrainingConfig(epochs=1, min_windows=10))
    det.fit([x])
    assert det.used_features(0) == {"used": ["values"], "one_sided": ["count"], "ignored": ["stddev"]}
    assert np.isnan(det.calibration.numpy()).all(), "the seed is set by calibration, not by fit"


def test_the_seed_is_the_validation_scores_count_mean_and_variance():
    from sensorwatch.training.fit import seed_of

    v = np.array([1.0, 2.0, 3.0, np.inf])
    assert seed_of(v) == (3.0, 2.0, 2.0 / 3.0)
    assert all(np.isnan(seed_of(np.array([]))))


def test_the_seed_leaves_out_labelled_validation_windows():
    """An incident the lifecycle left out of training lies in the next version's validation
    windows; the seed (the sensor's normal scores) must not take its scores in."""
    from sensorwatch.core.config import TrainingConfig
    from sensorwatch.training.fit import Prepared, fit_calibrated, seed_of

    rng = np.random.default_rng(1)
    t = np.arange(1100)
    v = np.sin(2 * np.pi * t / 60) + rng.normal(0, 0.05, t.size)
    v[1000:1040] += 8.0  # an incident in the validation part
    x = np.stack([v, np.full(t.size, 0.1), np.full(t.size, 5.0)], -1)
    X = np.lib.stride_tricks.sliding_window_view(x, S, axis=0).transpose(0, 2, 1).astype(np.float32)
    labels = np.zeros(200, bool)
    labels[1000 - S - (len(X) - 200) + 1 : 1040 - (len(X) - 200)] = True
    cal = fit_calibrated(
        [Prepared(X[:-200], X[-200:], np.arange(200), labels, len(X))],
        TrainingConfig(epochs=2, min_windows=10),
        S,
        use_labels=False,
    )
    seed = tuple(float(a) for a in cal.detector.calibration.numpy()[0])
    np.testing.assert_allclose(seed, seed_of(cal.val_scores[0][~labels]), rtol=1e-5)
    assert seed[0] == (~labels).sum() and seed[1] < cal.val_scores[0][labels].mean() / 5, (
        "the incident's scores stay out"
    )


def test_the_explanation_sees_features_in_their_roles():
    rng = np.random.default_rng(1)
    x = np.stack([rng.normal(10, 1, (200, S)), np.zeros((200, S)), np.ones((200, S))], axis=-1)
    det = make_detector("dense_ae", 1, S, F, TrainingConfig(epochs=1, min_windows=10))
    det.fit([x])
    w = x[:2].copy()
    w[0, :, 2] = 3.0  # extra readings: no evidence
    w[1, :, 2] = 0.0  # a dropout
    w[:, :, 1] = 5.0  # a spread the sensor never had: a dropped feature, not explained either
    per_step = np.zeros((2, S), np.float32)
    per_step[:, 4] = 1.0
    z = det.feature_z(tf.constant(w, tf.float32), tf.constant([0, 0]), tf.constant(per_step)).numpy()
    assert z[0, 2] == 0.0 and z[1, 2] < -3 and (z[:, 1] == 0.0).all()
    assert np.allclose(z[:, 0], (w[:, 4, 0] - det.mean.numpy()[0, 0]) / det.scale.numpy()[0, 0], atol=1e-4)
