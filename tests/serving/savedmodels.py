"""Real SavedModels with sensorwatch's serving signature, exported by TensorFlow, for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

S = 8


class ZScoreDetector(tf.Module):
    """A minimal model with sensorwatch's serving signature (values -> score, threshold, ...).

    Normalisation (mean, scale) and threshold are variables inside the SavedModel; the
    version's ``offset`` makes scores of different versions distinguishable in tests.
    """

    def __init__(self, mean: float, scale: float, threshold: float, offset: float = 0.0):
        super().__init__()
        self.mean = tf.Variable(mean, dtype=tf.float32)
        self.scale = tf.Variable(scale, dtype=tf.float32)
        self.thr = tf.Variable(threshold, dtype=tf.float32)
        self.offset = tf.Variable(offset, dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, S], tf.float32, name="values")])
    def serve(self, values):
        err = tf.square((values - self.mean) / self.scale)
        score = tf.reduce_mean(err, axis=1) + self.offset
        n = tf.shape(values)[0]
        return {
            "score": score,
            "threshold": tf.fill([n], self.thr),
            "is_anomaly": score > self.thr,
            "per_step_error": err,
        }


def export(path: Path, offset: float = 0.0, threshold: float = 4.0) -> None:
    m = ZScoreDetector(10.0, 2.0, threshold, offset)
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})


def reference_scores(path: Path, windows: np.ndarray) -> dict[str, np.ndarray]:
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["serving_default"](values=tf.constant(windows, tf.float32))
    return {k: v.numpy() for k, v in out.items()}
