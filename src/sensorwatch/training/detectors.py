"""Anomaly detectors, G independent sensors at a time, behind one interface.

Following Merlion's split, the public methods of :class:`Detector` validate, normalise and
batch; a kind implements ``_fit`` (on normalised windows) and ``_score`` (a TensorFlow graph
from normalised windows to a score per window and an error per step). The serving module
(:mod:`sensorwatch.training.export`) runs the very same ``score_graph`` inside the SavedModel, so the
in-process scores and the served scores are one computation.

All state (normalisation, weights, threshold) lives in variables whose first axis is the
group (sensor) index, which is what lets one class serve both layouts: a packed SavedModel
keeps G groups, a per-sensor SavedModel is ``subset(g)`` with G = 1.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import tensorflow as tf

from sensorwatch.core.config import TrainingConfig
from sensorwatch.core.windows import FEATURES
from sensorwatch.training.layers import StackedConv1D, StackedDense, StackedLSTM


class TrainingError(ValueError):
    """Data a detector cannot be trained on; the message says which sensor and why."""


class Detector(ABC):
    kind: ClassVar[str]
    #: True when scores are >= 0 (reconstruction errors): the threshold is quantile x margin.
    #: Signed scores (the SVM's) get quantile + (margin - 1) x (quantile - median) instead.
    nonnegative_scores: ClassVar[bool] = True

    def __init__(self, groups: int, seq_len: int, n_features: int, cfg: TrainingConfig):
        self.groups, self.seq_len, self.n_features, self.cfg = groups, seq_len, n_features, cfg
        self.mean = tf.Variable(tf.zeros([groups, n_features]), trainable=False, name="norm_mean")
        self.scale = tf.Variable(tf.ones([groups, n_features]), trainable=False, name="norm_scale")
        self.threshold = tf.Variable(tf.fill([groups], np.float32(np.inf)), trainable=False, name="threshold")
        # which features speak for each group: 1 used, 0 constant in training (say, the stddev of
        # one-reading windows), ONE_SIDED a constant count whose shortfall alone is evidence
        self.feature_use = tf.Variable(tf.ones([groups, n_features]), trainable=False, name="feature_use")
        # count, mean and variance of each group's validation scores: the incident stage's seed
        self.calibration = tf.Variable(
            tf.fill([groups, 3], np.float32(np.nan)), trainable=False, name="score_calibration"
        )
        import keras

        keras.utils.set_random_seed(cfg.seed)  # same seed, same initial weights: reproducible runs
        self._score_fn = None
        self._build()

    # -- the public, validating side ---------------------------------------------------------
    def fit(self, windows: list[np.ndarray]) -> list[list[float]]:
        """Train group g on ``windows[g]`` [N_g, S, F] (raw values); returns a loss curve per group."""
        xs = [self._check(w, f"group {g}") for g, w in enumerate(windows)]
        if len(xs) != self.groups:
            raise TrainingError(f"expected {self.groups} groups of windows, got {len(xs)}")
        for g, x in enumerate(xs):
            if x.shape[0] < self.cfg.min_windows:
                raise TrainingError(f"group {g}: {x.shape[0]} windows, need at least {self.cfg.min_windows}")
        mean = np.stack([x.reshape(-1, self.n_features).mean(0) for x in xs])
        sd = np.stack([x.reshape(-1, self.n_features).std(0) for x in xs])
        floor = np.maximum(self.cfg.scale_floor * np.abs(mean), 1e-6)
        self.mean.assign(mean.astype(np.float32))
        self.scale.assign(np.maximum(sd, floor).astype(np.float32))
        self.feature_use.assign(feature_use(sd, mean).astype(np.float32))
        m32, s32 = self.mean.numpy(), self.scale.numpy()
        return self._fit([((x - m32[g]) / s32[g]).astype(np.float32) for g, x in enumerate(xs)])

    def score(self, windows: np.ndarray, idx: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(score [N], per-step error [N, S]) for raw windows [N, S, F] of groups ``idx``."""
        x = self._check(windows, "windows")
        idx = np.broadcast_to(np.asarray(idx, dtype=np.int32), (x.shape[0],))
        if x.shape[0] == 0:
            return np.empty(0, np.float32), np.empty((0, self.seq_len), np.float32)
        if self._score_fn is None:  # one compiled graph per detector, whatever the batch size
            self._score_fn = tf.function(
                self.score_graph,
                input_signature=[
                    tf.TensorSpec([None, self.seq_len, self.n_features], tf.float32),
                    tf.TensorSpec([None], tf.int32),
                ],
            )
        out = [
            self._score_fn(tf.constant(x[i : i + 8192]), tf.constant(idx[i : i + 8192]))
            for i in range(0, x.shape[0], 8192)
        ]
        return (np.concatenate([o[0].numpy() for o in out]), np.concatenate([o[1].numpy() for o in out]))

    def score_graph(self, raw, idx):
        """The served computation: normalise with each row's group, then ``_score``."""
        xn = (raw - tf.gather(self.mean, idx)[:, None, :]) / tf.gather(self.scale, idx)[:, None, :]
        return self._score(xn, idx)

    def feature_z(self, raw, idx, per_step):
        """[N, F]: each feature's normalised value (training mean and scale) at the step the
        model blames most, as the explanation reads it: 0 for a dropped feature, and at most 0
        for a one-sided one (only a shortfall is evidence)."""
        xn = (raw - tf.gather(self.mean, idx)[:, None, :]) / tf.gather(self.scale, idx)[:, None, :]
        top = tf.argmax(per_step, axis=-1, output_type=tf.int32)
        z = tf.gather(tf.cast(xn, tf.float32), top, axis=1, batch_dims=1)
        use = tf.gather(self.feature_use, idx)
        return tf.where(tf.equal(use, 1.0), z, tf.where(tf.equal(use, ONE_SIDED), tf.minimum(z, 0.0), 0.0))

    def subset(self, g: int) -> Detector:
        """Group g alone, as a G = 1 detector (the per-sensor layout)."""
        one = type(self)(1, self.seq_len, self.n_features, self.cfg)
        one._resize_like(self, g)
        for dst, src in zip(one.state(), self.state()):
            dst.assign(src[g : g + 1])
        return one

    def state(self) -> list[tf.Variable]:
        """Every variable, each with the group axis first, in a fixed order."""
        return [self.mean, self.scale, self.threshold, self.feature_use, self.calibration, *self._weights()]

    def used_features(self, g: int) -> dict[str, list[str]]:
        """Group g's features by role, for the report: ``used``, ``one_sided``, ``ignored``."""
        use = self.feature_use.numpy()[g]
        names = list(FEATURES)[: self.n_features]
        return {
            "used": [f for f, u in zip(names, use) if u == 1.0],
            "one_sided": [f for f, u in zip(names, use) if u == ONE_SIDED],
            "ignored": [f for f, u in zip(names, use) if u == 0.0],
        }

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.seq_len, self.n_features):
            raise TrainingError(f"{what}: expected [N, {self.seq_len}, {self.n_features}], got {list(x.shape)}")
        if not np.isfinite(x).all():
            raise TrainingError(f"{what}: NaN or Inf in the windows")
        return x

    def _resize_like(self, other: Detector, g: int) -> None:  # noqa: B027 - an optional hook
        """Hook for kinds whose variable shapes depend on the data (the SVM's support vectors)."""

    # -- what a kind implements ----------------------------------------------------------------
    @abstractmethod
    def _build(self) -> None: ...

    @abstractmethod
    def _weights(self) -> list[tf.Variable]: ...

    @abstractmethod
    def _fit(self, xs: list[np.ndarray]) -> list[list[float]]: ...

    @abstractmethod
    def _score(self, xn, idx): ...


#: ``feature_use`` of a feature constant in training whose fall below that constant is evidence
#: and whose rise is not: the reading count (a dropout is an anomaly; an extra reading is not).
ONE_SIDED = -1.0


def feature_use(sd: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """[G, F] roles from the training spread ``sd`` and ``mean`` of each group's features.

    A feature that never varied in training carries no information about normal, only noise in
    the reconstruction error: it is dropped, so it cannot dilute the score of the features that
    do. The count is the exception: a constant count that falls is a dropout.
    """
    constant = sd <= 1e-9 * np.maximum(np.abs(mean), 1.0)
    use = np.where(constant, 0.0, 1.0)
    count = list(FEATURES).index("count")
    if count < use.shape[1]:
        use[:, count] = np.where(constant[:, count], ONE_SIDED, 1.0)
    return use


def weigh_features(err, xn, use):
    """(score [N], per-step error [N, S]) from squared errors ``err`` [N, S, F] under ``use`` [N, F]:
    the mean over used features, plus the squared shortfall of one-sided ones."""
    use = tf.cast(use, err.dtype)[:, None, :]
    used = tf.cast(tf.equal(use, 1.0), err.dtype)
    one_sided = tf.cast(tf.equal(use, ONE_SIDED), err.dtype)
    shortfall = tf.square(tf.minimum(tf.cast(xn, err.dtype), 0.0))
    n = tf.maximum(tf.reduce_sum(used, axis=-1), 1.0)
    per_step = (tf.reduce_sum(used * err, axis=-1) + tf.reduce_sum(one_sided * shortfall, axis=-1)) / n
    return tf.reduce_mean(per_step, axis=-1), per_step


class AutoencoderDetector(Detector):
    """Score = mean squared reconstruction error of the normalised window; per step, over features."""

    def _weights(self):
        return [w for layer in self.layers for w in (layer.trainable_weights)]

    @abstractmethod
    def _reconstruct(self, x, idx): ...

    def _score(self, xn, idx):
        err = tf.square(self._reconstruct(xn, idx) - xn)  # [N, S, F]
        return weigh_features(err, xn, tf.gather(self.feature_use, idx))

    def _fit(self, xs):
        import keras

        c = self.cfg
        rng = np.random.default_rng(c.seed)
        nmax = max(x.shape[0] for x in xs)
        # Shorter groups are topped up by resampling their own windows, so every group gets
        # the same number of updates and no masking is needed.
        X = np.stack([np.concatenate([x, x[rng.integers(0, x.shape[0], nmax - x.shape[0])]]) for x in xs])
        X = tf.constant(X)
        opt = keras.optimizers.Adam(c.learning_rate)
        variables = self._weights()

        @tf.function(jit_compile=c.jit_compile)
        def step(batch):
            xb = tf.gather(X, batch, axis=1)
            with tf.GradientTape() as tape:
                per_group = tf.reduce_mean(tf.square(self._reconstruct(xb, None) - xb), axis=[1, 2, 3])
                loss = tf.reduce_sum(per_group)  # independent groups: the sum keeps gradients apart
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return per_group

        bs = min(c.batch_size, nmax)
        curves: list[list[float]] = [[] for _ in xs]
        for _ in range(c.epochs):
            perm = rng.permutation(nmax).astype(np.int32)
            total, steps = 0.0, 0
            for i in range(0, nmax - bs + 1, bs):
                total = step(tf.constant(perm[i : i + bs])) + total
                steps += 1
            for g, v in enumerate((total / steps).numpy()):
                curves[g].append(float(v))
        return curves


class DenseAE(AutoencoderDetector):
    kind = "dense_ae"

    def _build(self):
        G, d, c = self.groups, self.seq_len * self.n_features, self.cfg
        self.layers = [
            StackedDense(G, d, c.hidden, "relu"),
            StackedDense(G, c.hidden, c.latent),
            StackedDense(G, c.latent, c.hidden, "relu"),
            StackedDense(G, c.hidden, d),
        ]

    def _reconstruct(self, x, idx):
        shape = tf.shape(x)
        h = tf.reshape(x, tf.concat([shape[:-2], [self.seq_len * self.n_features]], 0))
        for layer in self.layers:
            h = layer(h, idx)
        return tf.reshape(h, shape)


class ConvAE(AutoencoderDetector):
    """Conv1D encoder with two 2x poolings, decoder with two 2x upsamplings (S must divide by 4)."""

    kind = "conv_ae"

    def _build(self):
        if self.seq_len % 4:
            raise TrainingError(f"conv_ae needs seq_len divisible by 4, got {self.seq_len}")
        G, F, c, k = self.groups, self.n_features, self.cfg, self.cfg.kernel_size
        self.layers = [
            StackedConv1D(G, F, c.hidden, k, "relu"),
            StackedConv1D(G, c.hidden, c.latent, k, "relu"),
            StackedConv1D(G, c.latent, c.hidden, k, "relu"),
            StackedConv1D(G, c.hidden, F, k),
        ]

    @staticmethod
    def _pool(x):
        s = tf.shape(x)
        return tf.reduce_mean(tf.reshape(x, tf.concat([s[:-2], [s[-2] // 2, 2, s[-1]]], 0)), axis=-2)

    @staticmethod
    def _up(x):
        return tf.repeat(x, 2, axis=-2)

    def _reconstruct(self, x, idx):
        enc1, enc2, dec1, dec2 = self.layers
        h = self._pool(enc1(x, idx))
        h = self._pool(enc2(h, idx))
        h = dec1(self._up(h), idx)
        return dec2(self._up(h), idx)


class LstmAE(AutoencoderDetector):
    """Seq2seq: LSTM encoder -> latent -> repeated S times -> LSTM decoder -> per-step dense."""

    kind = "lstm_ae"

    def _build(self):
        G, F, c = self.groups, self.n_features, self.cfg
        self.layers = [
            StackedLSTM(G, F, c.hidden),
            StackedDense(G, c.hidden, c.latent),
            StackedLSTM(G, c.latent, c.hidden, return_sequences=True),
            StackedDense(G, c.hidden, F),
        ]

    def _reconstruct(self, x, idx):
        enc, to_latent, dec, out = self.layers
        z = to_latent(enc(x, idx), idx)
        return out(dec(tf.repeat(tf.expand_dims(z, -2), self.seq_len, axis=-2), idx), idx)


class OneClassSVM(Detector):
    """scikit-learn's RBF One-class SVM, its decision function rebuilt from TF ops.

    Score = -decision_function (higher is more anomalous), computed in float64 so the
    SavedModel matches scikit-learn to ~1e-9. Groups have different numbers of support
    vectors; shorter ones are padded with zero dual coefficients. Per-step error is the
    squared normalised deviation from the training mean (the SVM has no reconstruction). It
    keeps every feature: one constant in training is 0 in every support vector and adds only
    its own deviation.
    """

    kind = "ocsvm"
    nonnegative_scores = False

    def _build(self):
        self._alloc(1)

    def _alloc(self, m: int):
        G, d = self.groups, self.seq_len * self.n_features
        self.sv = tf.Variable(tf.zeros([G, m, d], tf.float64), trainable=False, name="support_vectors")
        self.dual = tf.Variable(tf.zeros([G, m], tf.float64), trainable=False, name="dual_coef")
        self.intercept = tf.Variable(tf.zeros([G], tf.float64), trainable=False, name="intercept")
        self.gamma = tf.Variable(tf.ones([G], tf.float64), trainable=False, name="gamma")

    def _weights(self):
        return [self.sv, self.dual, self.intercept, self.gamma]

    def _resize_like(self, other, g):
        self._alloc(int(other.sv.shape[1]))

    def _fit(self, xs):
        from sklearn.svm import OneClassSVM as SkOCSVM

        rng = np.random.default_rng(self.cfg.seed)
        fitted = []
        for x in xs:
            flat = x.reshape(x.shape[0], -1).astype(np.float64)
            if flat.shape[0] > self.cfg.svm_max_samples:
                flat = flat[rng.choice(flat.shape[0], self.cfg.svm_max_samples, replace=False)]
            fitted.append(SkOCSVM(kernel="rbf", gamma="scale", nu=self.cfg.svm_nu).fit(flat))
        self.sklearn_models = fitted
        m = max(f.support_vectors_.shape[0] for f in fitted)
        self._alloc(m)
        sv = np.zeros(self.sv.shape)
        dual = np.zeros(self.dual.shape)
        for g, f in enumerate(fitted):
            k = f.support_vectors_.shape[0]
            sv[g, :k], dual[g, :k] = f.support_vectors_, f.dual_coef_[0]
        self.sv.assign(sv)
        self.dual.assign(dual)
        self.intercept.assign([float(f.intercept_[0]) for f in fitted])
        self.gamma.assign([float(f._gamma) for f in fitted])
        return [[] for _ in xs]

    def score_graph(self, raw, idx):
        # float64 end to end, normalisation included, to match scikit-learn on the same inputs.
        mean = tf.cast(tf.gather(self.mean, idx), tf.float64)[:, None, :]
        scale = tf.cast(tf.gather(self.scale, idx), tf.float64)[:, None, :]
        return self._score((tf.cast(raw, tf.float64) - mean) / scale, idx)

    def _score(self, xn, idx):
        flat = tf.reshape(xn, [tf.shape(xn)[0], self.seq_len * self.n_features])
        sv = tf.gather(self.sv, idx)  # [N, M, D]
        d2 = (
            tf.reduce_sum(tf.square(flat), -1)[:, None]
            - 2.0 * tf.einsum("nd,nmd->nm", flat, sv)
            + tf.reduce_sum(tf.square(sv), -1)
        )
        k = tf.exp(-tf.gather(self.gamma, idx)[:, None] * tf.maximum(d2, 0.0))
        decision = tf.reduce_sum(tf.gather(self.dual, idx) * k, -1) + tf.gather(self.intercept, idx)
        per_step = tf.reduce_mean(tf.square(xn), axis=-1)
        return tf.cast(-decision, tf.float32), tf.cast(per_step, tf.float32)


KINDS: dict[str, type[Detector]] = {k.kind: k for k in (DenseAE, ConvAE, LstmAE, OneClassSVM)}


def make_detector(kind: str, groups: int, seq_len: int, n_features: int, cfg: TrainingConfig) -> Detector:
    try:
        cls = KINDS[kind]
    except KeyError:
        raise TrainingError(f"unknown model kind {kind!r}; one of {sorted(KINDS)}") from None
    return cls(groups, seq_len, n_features, cfg)
