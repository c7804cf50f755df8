"""Every model kind: independence of stacked groups, per-sensor subsets, the SVM against
scikit-learn, and detection of the simulator's injected anomalies."""

from __future__ import annotations

import numpy as np
import pytest
from trainhelpers import history, train_settings

from sensorwatch.core.windows import sequences
from sensorwatch.training.calibrate import quantile_threshold
from sensorwatch.training.detectors import KINDS, TrainingError, make_detector
from sensorwatch.training.fit import split

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml

S = 16


def _windows(settings, anomalies=0.0):
    hist, labels = history(settings, anomalies)
    return {s: sequences(ser, S) for s, ser in sorted(hist.items())}, labels


@pytest.mark.parametrize("kind", ["dense_ae", "conv_ae", "lstm_ae"])
def test_stacked_groups_train_independently(tmp_path, kind):
    """Group 0's gradients are the same whatever group 1 holds, and so is its normalisation.

    Not the trained weights bit for bit: Adam divides by the root of the squared gradient, so a
    last-bit difference in a gradient near zero (the order a multi-threaded reduction added in)
    becomes a step of the full learning rate, and after a few hundred steps a weight can differ
    by 0.07 between two runs on identical data (a CI run saw it). The gradient is what carries
    one group's data into another's weights, and it is compared here to float precision."""
    import tensorflow as tf

    s = train_settings(tmp_path, kind, epochs=2)
    w = [X for X, _ in _windows(s)[0].values()]
    other = w[2] * 3.0 + 1.0
    z = [np.nan_to_num((x[:64] - np.nanmean(x, (0, 1))) / np.nanstd(x, (0, 1))).astype(np.float32) for x in w]
    z_other = np.nan_to_num((other[:64] - np.nanmean(other, (0, 1))) / 0.5).astype(np.float32)

    def grads(group1: np.ndarray) -> list[np.ndarray]:
        det = make_detector(kind, 2, S, 3, s.training)  # the seed: the same initial weights each time
        x = tf.constant(np.stack([z[0], group1]))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.reduce_mean(tf.square(det._reconstruct(x, None) - x), axis=[1, 2, 3]))
        return [g.numpy() for g in tape.gradient(loss, det._weights())]

    ga, gb = grads(z[1]), grads(z_other)
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-7)
    assert not all(np.allclose(a[1], b[1]) for a, b in zip(ga, gb)), "group 1's own gradients follow its data"
    # trained side by side with different neighbours, group 0 is normalised by its own data alone
    a = make_detector(kind, 2, S, 3, s.training)
    a.fit([w[0], w[1]])
    b = make_detector(kind, 2, S, 3, s.training)
    b.fit([w[0], other])
    assert np.array_equal(a.mean.numpy()[0], b.mean.numpy()[0]) and np.array_equal(
        a.scale.numpy()[0], b.scale.numpy()[0]
    )
    assert not np.allclose(a.mean.numpy()[1], b.mean.numpy()[1])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_subset_scores_like_its_group_in_the_stack(tmp_path, kind):
    s = train_settings(tmp_path, kind, epochs=2)
    w = [X for X, _ in _windows(s)[0].values()][:3]
    det = make_detector(kind, 3, S, 3, s.training)
    det.fit(w)
    for g in range(3):
        packed, packed_steps = det.score(w[g][:50], g)
        solo, solo_steps = det.subset(g).score(w[g][:50], 0)
        np.testing.assert_allclose(solo, packed, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(solo_steps, packed_steps, rtol=1e-5, atol=1e-6)
        assert solo_steps.shape == (50, S)


def test_one_class_svm_matches_scikit_learn(tmp_path):
    s = train_settings(tmp_path, "ocsvm")
    w = [X for X, _ in _windows(s)[0].values()][:2]
    det = make_detector("ocsvm", 2, S, 3, s.training)
    det.fit(w)
    for g in range(2):
        x = w[g][::7]
        norm = (x.astype(np.float64) - det.mean.numpy()[g]) / det.scale.numpy()[g]
        expected = -det.sklearn_models[g].decision_function(norm.reshape(len(x), -1))
        got, _ = det.score(x, g)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_flags_injected_anomalies_and_few_normal_windows(tmp_path, kind):
    """Train on a clean history, score the same seed's history with anomalies of every kind."""
    s = train_settings(tmp_path, kind, epochs=15)
    clean, _ = _windows(s)
    sensors = sorted(clean)
    splits = [split(X, e, 0.2, S) for X, e in clean.values()]
    det = make_detector(kind, len(sensors), S, 3, s.training)
    det.fit([tr for tr, _, _ in splits])
    thr = [
        quantile_threshold(det.score(va, g)[0], 0.995, 1.5, det.nonnegative_scores)
        for g, (_, va, _) in enumerate(splits)
    ]
    dirty, labels = _windows(s, anomalies=2.0)
    assert {lab.kind for lab in labels} >= {"spike", "level_shift", "stuck", "noise_burst", "dropout"}
    hit = fp = normal = 0
    for g, sensor in enumerate(sensors):
        X, ends = dirty[sensor]
        flag = det.score(X, g)[0] > thr[g]
        inside = np.zeros(len(ends), bool)
        for lab in (x for x in labels if x.sensor == sensor):
            m = (ends - S * 5000 < lab.end) & (ends > lab.start)
            inside |= m
            hit += bool(flag[m].any())
        fp += int((flag & ~inside).sum())
        normal += int((~inside).sum())
    recall = hit / len(labels)
    assert recall >= 0.8, f"{kind}: event recall {recall:.2f}"
    assert fp / normal <= 0.02, f"{kind}: {fp} of {normal} normal windows flagged"


def test_bad_training_data_is_rejected_with_the_reason(tmp_path):
    s = train_settings(tmp_path)
    det = make_detector("dense_ae", 1, S, 3, s.training)
    with pytest.raises(TrainingError, match=r"expected \[N, 16, 3\]"):
        det.fit([np.zeros((100, 8, 3))])
    bad = np.ones((100, S, 3))
    bad[5, 3, 0] = np.nan
    with pytest.raises(TrainingError, match="NaN"):
        det.fit([bad])
    with pytest.raises(TrainingError, match="at least 32"):
        det.fit([np.ones((10, S, 3))])
    with pytest.raises(TrainingError, match="unknown model kind"):
        make_detector("forest", 1, S, 3, s.training)
    with pytest.raises(TrainingError, match="divisible by 4"):
        make_detector("conv_ae", 1, 10, 3, s.training)
