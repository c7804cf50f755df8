"""A trained detector as a TF Serving SavedModel with sensorwatch's signature.

Signature ``serving_default`` (per-sensor layout)::

    values  float32 [N, S]   window means (raw units: normalisation is inside the model)
    stddev  float32 [N, S]   within-window standard deviations
    count   float32 [N, S]   readings per tumbling window
    sensor  string  [N]      packed layout only: which sensor each row belongs to
 -> score float32 [N], threshold float32 [N], is_anomaly bool [N], per_step_error float32 [N, S]
    known   bool [N]         packed layout only: False for a sensor the model does not hold
                             (score NaN, is_anomaly False), so the job can report "no model"

``assets.extra/`` carries TF Serving warmup requests (replayed before a version serves),
the training report (JSON) and one PNG per sensor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from sensorwatch.core.windows import FEATURES
from sensorwatch.training.detectors import Detector

REPORT_FILE = "sensorwatch_report.json"


class ServingModule(tf.Module):
    def __init__(self, detector: Detector, sensors: list[str] | None = None):
        super().__init__()
        if detector.n_features != len(FEATURES):
            raise ValueError(f"a served model takes {FEATURES}; this detector has {detector.n_features} features")
        self.detector_state = detector.state()
        self.detector_layers = list(getattr(detector, "layers", []))
        self._det = detector
        S = detector.seq_len
        spec = [tf.TensorSpec([None, S], tf.float32, name=f) for f in FEATURES]
        if sensors is None:
            if detector.groups != 1:
                raise ValueError("a per-sensor model holds one group; pass sensors= for a packed model")
            self.serve = tf.function(self._serve_one, input_signature=spec)
        else:
            if len(sensors) != detector.groups:
                raise ValueError(f"{len(sensors)} sensor names for {detector.groups} groups")
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(sensors), tf.range(len(sensors), dtype=tf.int32)), -1
            )
            self.serve = tf.function(
                self._serve_packed, input_signature=spec + [tf.TensorSpec([None], tf.string, name="sensor")]
            )

    def _outputs(self, values, stddev, count, idx):
        raw = tf.stack([values, stddev, count], axis=-1)
        score, per_step = self._det.score_graph(raw, idx)
        thr = tf.gather(self._det.threshold, idx)
        cal = tf.gather(self._det.calibration, idx)  # the incident stage's seed, per row
        return {
            "score": score,
            "threshold": thr,
            "is_anomaly": score > thr,
            "per_step_error": per_step,
            "feature_z": self._det.feature_z(raw, idx, per_step),
            "seed_n": cal[:, 0],
            "seed_mean": cal[:, 1],
            "seed_var": cal[:, 2],
        }

    def _serve_one(self, values, stddev, count):
        return self._outputs(values, stddev, count, tf.zeros([tf.shape(values)[0]], tf.int32))

    def _serve_packed(self, values, stddev, count, sensor):
        idx = self.table.lookup(sensor)
        known = idx >= 0
        out = self._outputs(values, stddev, count, tf.maximum(idx, 0))
        nan = tf.fill(tf.shape(out["score"]), np.float32(np.nan))
        out["score"] = tf.where(known, out["score"], nan)
        out["threshold"] = tf.where(known, out["threshold"], nan)
        out["is_anomaly"] = tf.logical_and(known, out["is_anomaly"])
        out["known"] = known
        return out


def warmup_request(model: str, windows: np.ndarray, sensors: list[str] | None):
    """A PredictRequest like the job's, for assets.extra/tf_serving_warmup_requests."""
    from sensorwatch.serving.client import predict_request, score_inputs

    return predict_request(model, score_inputs(windows, sensors))


def write_saved_model(
    path: Path,
    detector: Detector,
    *,
    model: str,
    sensors: list[str] | None,
    report: dict,
    warmup_windows: np.ndarray,
    plots: dict[str, bytes] | None = None,
) -> None:
    """Save ``detector`` to ``path`` with warmup requests, report and plots in assets.extra."""
    from tensorflow_serving.apis import prediction_log_pb2

    module = ServingModule(detector, sensors)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    extra = Path(path) / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as w:
        req = warmup_request(model, warmup_windows, sensors and [sensors[0]] * len(warmup_windows))
        w.write(
            prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString()
        )
    (extra / REPORT_FILE).write_text(json.dumps(report, indent=1, default=float))
    for name, png in (plots or {}).items():
        (extra / name).write_bytes(png)


def read_report(version_dir: Path) -> dict | None:
    f = Path(version_dir) / "assets.extra" / REPORT_FILE
    return json.loads(f.read_text()) if f.is_file() else None
