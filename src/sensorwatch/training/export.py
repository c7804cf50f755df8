"""A trained detector as a TF Serving SavedModel with sensorwatch's signature.

Device models (one model sees every tag of a device) have their own signature: see
:class:`DeviceServingModule`.

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

from sensorwatch.core.windows import FEATURES, feature_columns
from sensorwatch.serving.repository import REPORT_FILE
from sensorwatch.training.detectors import Detector


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
        score, per_step, _ = self._det.score_graph(raw, idx)
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


class DeviceServingModule(tf.Module):
    """A device model's signature: S steps of C tags, in whatever tag order the caller has.

    Inputs: ``device`` string [N]; ``tag`` string [N, C], the tag of each column (``""`` pads);
    ``values``, ``stddev``, ``count`` float32 [N, S, C]; ``mask`` float32 [N, S, C], 1 where the
    tag had a reading in that step. The model maps each column to its own fixed tag order
    (recorded at training) by the sensor id ``device/tag``, so callers need not know it; a
    column the model does not know comes back in ``unknown_tag`` and adds nothing; a known tag
    the caller did not send is imputed (its training mean) and masked. Every feature is sent;
    the model reads those of its ``training.device_features`` (the means alone by default).

    Outputs: ``score``, ``threshold``, ``is_anomaly``, ``known`` (the device is the model's)
    [N]; ``per_step_error`` [N, S]; ``tag_share`` [N, C], each column's share of the score
    (0 for unknown and padding columns; the shares of a known window sum to 1);
    ``unknown_tag`` bool [N, C]; the incident seed ``seed_n``, ``seed_mean``, ``seed_var`` [N].
    Packed device models hold devices of different tag counts side by side: each group's
    columns past its own tags are never read (``feature_use`` 0).
    """

    def __init__(self, detector: Detector, devices: list[str], tags: list[list[str]]):
        super().__init__()
        #: the features the model reads of each tag, as indices into the signature's FEATURES
        self.read = tuple(feature_columns(detector.features))
        F = len(self.read)
        self.width = detector.n_features // F
        widest = max(len(t) for t in tags)
        if (
            detector.n_features % F
            or self.width < widest
            or detector.groups != len(devices)
            or len(tags) != len(devices)
        ):
            raise ValueError(
                f"a device detector of {detector.groups} groups x {detector.n_features} features "
                f"does not hold {len(devices)} devices of up to {widest} tags x {F} features"
            )
        self.detector_state = detector.state()
        self.detector_layers = list(getattr(detector, "layers", []))
        self._det = detector
        self.devices = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(devices), tf.range(len(devices), dtype=tf.int32)), -1
        )
        keys = [f"{d}/{t}" for d, ts in zip(devices, tags) for t in ts]
        cols = [c for ts in tags for c in range(len(ts))]
        self.columns = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(cols, tf.int32)), -1
        )
        S = detector.seq_len
        spec = [tf.TensorSpec([None, S, None], tf.float32, name=f) for f in (*FEATURES, "mask")]
        self.serve = tf.function(
            self._serve,
            input_signature=[
                tf.TensorSpec([None], tf.string, name="device"),
                tf.TensorSpec([None, None], tf.string, name="tag"),
                *spec,
            ],
        )

    def _serve(self, device, tag, values, stddev, count, mask):
        g = self.devices.lookup(device)
        known = g >= 0
        idx = tf.maximum(g, 0)
        sensor = tf.strings.join([tf.broadcast_to(device[:, None], tf.shape(tag)), tag], "/")
        col = tf.where(tf.equal(tag, ""), -1, self.columns.lookup(sensor))  # [N, C]
        onehot = tf.one_hot(col, self.width)  # [N, C, M]: sent column -> the model's column
        sent = [values, stddev, count]  # the order of FEATURES
        raw = tf.stack([sent[i] for i in self.read], axis=-1)  # [N, S, C, F]: what the model reads
        n, S, F = tf.shape(raw)[0], self._det.seq_len, len(self.read)
        x = tf.einsum("nscf,ncm->nsmf", raw, onehot)
        m = tf.minimum(tf.einsum("nsc,ncm->nsm", mask, onehot), 1.0)
        x = tf.reshape(x, [n, S, self.width * F])
        m = tf.reshape(tf.repeat(m[..., None], F, axis=-1), [n, S, self.width * F])
        score, per_step, per_feature = self._det.score_graph(x, idx, m)
        per_tag = tf.reduce_sum(tf.reshape(per_feature, [n, self.width, F]), -1)  # [N, M]
        share = tf.math.divide_no_nan(per_tag, tf.reduce_sum(per_tag, -1, keepdims=True))
        thr = tf.gather(self._det.threshold, idx)
        cal = tf.gather(self._det.calibration, idx)
        nan = tf.fill(tf.shape(score), np.float32(np.nan))
        return {
            "score": tf.where(known, score, nan),
            "threshold": tf.where(known, thr, nan),
            "is_anomaly": tf.logical_and(known, score > thr),
            "known": known,
            "per_step_error": per_step,
            "tag_share": tf.einsum("nm,ncm->nc", share, onehot),
            "unknown_tag": tf.logical_and(tf.not_equal(tag, ""), col < 0),
            "seed_n": cal[:, 0],
            "seed_mean": cal[:, 1],
            "seed_var": cal[:, 2],
        }


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
    devices: dict[str, list[str]] | None = None,
) -> None:
    """Save ``detector`` to ``path`` with warmup requests, report and plots in assets.extra.

    ``devices`` (device name -> its tags, in the model's order, group order) makes a device
    model (:class:`DeviceServingModule`); ``warmup_windows`` are then [N, S, C, F] of the first."""
    from tensorflow_serving.apis import prediction_log_pb2

    if devices is not None:
        module = DeviceServingModule(detector, list(devices), list(devices.values()))
    else:
        module = ServingModule(detector, sensors)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    extra = Path(path) / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as w:
        if devices is not None:
            from sensorwatch.serving.client import device_inputs, predict_request

            first, tags = next(iter(devices.items()))
            n = len(warmup_windows)
            req = predict_request(model, device_inputs([first] * n, np.asarray([tags] * n, object), warmup_windows))
        else:
            req = warmup_request(model, warmup_windows, sensors and [sensors[0]] * len(warmup_windows))
        w.write(
            prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString()
        )
    (extra / REPORT_FILE).write_text(json.dumps(report, indent=1, default=float))
    for name, png in (plots or {}).items():
        (extra / name).write_bytes(png)
