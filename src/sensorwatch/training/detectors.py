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

    def __init__(self, groups: int, seq_len: int, n_features: int, cfg: TrainingConfig, masked: bool = False):
        self.groups, self.seq_len, self.n_features, self.cfg = groups, seq_len, n_features, cfg
        #: a device model: windows may hold NaN (a tag without a reading in a step), which is
        #: imputed with the feature's training mean and masked out of the error
        self.masked = masked
        #: the features of each tag, tag-major: a sensor model reads all of :data:`FEATURES`, a
        #: device model those of ``training.device_features``
        self.features: tuple[str, ...] = tuple(cfg.device_features) if masked else FEATURES
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
        # each feature's typical squared error on the training windows (device models; 1 for a
        # sensor model): errors are read relative to it, so a tag the others predict well speaks
        # up when it stops following them, and an unpredictable feature (a spread) does not drown it
        self.error_scale = tf.Variable(tf.ones([groups, n_features]), trainable=False, name="error_scale")
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
        mean = np.stack([_nan_to(np.nanmean(x.reshape(-1, self.n_features), 0)) for x in xs])
        sd = np.stack([_nan_to(np.nanstd(x.reshape(-1, self.n_features), 0)) for x in xs])
        floor = np.maximum(self.cfg.scale_floor * np.abs(mean), 1e-6)
        self.mean.assign(mean.astype(np.float32))
        self.scale.assign(np.maximum(sd, floor).astype(np.float32))
        self.feature_use.assign(feature_use(sd, mean, self.features).astype(np.float32))
        m32, s32 = self.mean.numpy(), self.scale.numpy()
        # a missing value is imputed with its feature's mean: 0 once normalised
        xn = [np.nan_to_num((x - m32[g]) / s32[g]).astype(np.float32) for g, x in enumerate(xs)]
        return self._fit(xn)

    def score_groups(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """Scores of ``windows[g]`` (raw, [N_g, S, F]) under group g, for every group."""
        return [self.score(w, g)[0] for g, w in enumerate(windows)]

    def score(self, windows: np.ndarray, idx: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(score [N], per-step error [N, S]) for raw windows [N, S, F] of groups ``idx``."""
        x = self._check(windows, "windows")
        idx = np.broadcast_to(np.asarray(idx, dtype=np.int32), (x.shape[0],))
        if x.shape[0] == 0:
            return np.empty(0, np.float32), np.empty((0, self.seq_len), np.float32)
        mask = np.isfinite(x).astype(np.float32)
        x = np.nan_to_num(x)
        if self._score_fn is None:  # one compiled graph per detector, whatever the batch size
            spec = tf.TensorSpec([None, self.seq_len, self.n_features], tf.float32)
            self._score_fn = tf.function(
                lambda raw, idx, mask: self.score_graph(raw, idx, mask if self.masked else None)[:2],
                input_signature=[spec, tf.TensorSpec([None], tf.int32), spec],
            )
        out = [
            self._score_fn(
                tf.constant(x[i : i + 8192]), tf.constant(idx[i : i + 8192]), tf.constant(mask[i : i + 8192])
            )
            for i in range(0, x.shape[0], 8192)
        ]
        return (np.concatenate([o[0].numpy() for o in out]), np.concatenate([o[1].numpy() for o in out]))

    def score_graph(self, raw, idx, mask=None):
        """The served computation: normalise with each row's group, then ``_score``.

        ``mask`` [N, S, F] (device models): 1 where a value was read, 0 where it is missing; a
        missing value is imputed with its training mean and adds nothing to the error.
        Returns (score [N], per-step error [N, S], per-feature error [N, F]), the last summing
        to the score: what each feature contributed.
        """
        xn = (raw - tf.gather(self.mean, idx)[:, None, :]) / tf.gather(self.scale, idx)[:, None, :]
        if mask is not None:
            xn = xn * tf.cast(mask, xn.dtype)
        return self._score(xn, idx, mask)

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
        one = type(self)(1, self.seq_len, self.n_features, self.cfg, self.masked)
        one._resize_like(self, g)
        for dst, src in zip(one.state(), self.state()):
            dst.assign(src[g : g + 1])
        return one

    def state(self) -> list[tf.Variable]:
        """Every variable, each with the group axis first, in a fixed order."""
        return [
            self.mean,
            self.scale,
            self.threshold,
            self.feature_use,
            self.calibration,
            self.error_scale,
            *self._weights(),
        ]

    def used_features(self, g: int) -> dict[str, list[str]]:
        """Group g's features by role, for the report: ``used``, ``one_sided``, ``ignored``."""
        use = self.feature_use.numpy()[g]
        names = list(self.features)[: self.n_features]
        return {
            "used": [f for f, u in zip(names, use) if u == 1.0],
            "one_sided": [f for f, u in zip(names, use) if u == ONE_SIDED],
            "ignored": [f for f, u in zip(names, use) if u == 0.0],
        }

    @property
    def relations(self) -> bool:
        """A device model reading its tags' relations (autoencoders; see :class:`AutoencoderDetector`)."""
        return False

    @property
    def threshold_margin(self) -> float:
        """The threshold's margin over its validation quantile: ``training.threshold_margin``, or
        ``relations_threshold_margin`` for a relations model (its worst-of-tags score has the
        longer tail)."""
        return self.cfg.relations_threshold_margin if self.relations else self.cfg.threshold_margin

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.seq_len, self.n_features):
            raise TrainingError(f"{what}: expected [N, {self.seq_len}, {self.n_features}], got {list(x.shape)}")
        bad = np.isinf(x).any() if self.masked else not np.isfinite(x).all()
        if bad:
            raise TrainingError(f"{what}: {'Inf' if self.masked else 'NaN or Inf'} in the windows")
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
    def _score(self, xn, idx, mask=None): ...


#: ``feature_use`` of a feature constant in training whose fall below that constant is evidence
#: and whose rise is not: the reading count (a dropout is an anomaly; an extra reading is not).
ONE_SIDED = -1.0


def feature_use(sd: np.ndarray, mean: np.ndarray, features: tuple[str, ...] = FEATURES) -> np.ndarray:
    """[G, F] roles from the training spread ``sd`` and ``mean`` of each group's features,
    ``features`` naming the columns of one tag (tag-major: a device's columns repeat them).

    A feature that never varied in training carries no information about normal, only noise in
    the reconstruction error: it is dropped, so it cannot dilute the score of the features that
    do. The count is the exception: a constant count that falls is a dropout (of any tag).
    """
    constant = sd <= 1e-9 * np.maximum(np.abs(mean), 1.0)
    use = np.where(constant, 0.0, 1.0)
    F = len(features)
    names = [features[i % F] if use.shape[1] % F == 0 or i < F else "" for i in range(use.shape[1])]
    count = np.asarray([n == "count" for n in names], bool)
    use[:, count] = np.where(constant[:, count], ONE_SIDED, 1.0)
    return use


def _nan_to(a: np.ndarray, value: float = 0.0) -> np.ndarray:
    """A feature never read in training (all NaN): mean and spread ``value``, so it is dropped."""
    return np.where(np.isfinite(a), a, value)


#: The smallest error scale: a feature reconstructed almost exactly must not turn noise into alarms.
ERROR_SCALE_FLOOR = 1e-2


def _evidence(err, xn, use, mask):
    """(used [N, S, F], evidence [N, S, F]): which values are read (used in training and
    present), and what each contributes: its error if used, its squared shortfall if one-sided."""
    use = tf.cast(use, err.dtype)[:, None, :]
    if mask is not None:
        use = use * tf.cast(mask, err.dtype)
    used = tf.cast(tf.equal(use, 1.0), err.dtype)
    one_sided = tf.cast(tf.equal(use, ONE_SIDED), err.dtype)
    shortfall = tf.square(tf.minimum(tf.cast(xn, err.dtype), 0.0))
    return used, used * err + one_sided * shortfall


def weigh_features(err, xn, use, mask=None):
    """(score [N], per-step error [N, S], per-feature error [N, F]) from squared errors ``err``
    [N, S, F] under ``use`` [N, F]: the mean over used features, plus the squared shortfall of
    one-sided ones; a masked (missing) value counts for nothing. The per-feature errors sum to
    the score."""
    used, part = _evidence(err, xn, use, mask)
    n = tf.maximum(tf.reduce_sum(used, axis=-1), 1.0)  # per step: features read (used, and present)
    contrib = part / n[..., None]  # [N, S, F]
    per_step = tf.reduce_sum(contrib, axis=-1)
    return tf.reduce_mean(per_step, axis=-1), per_step, tf.reduce_mean(contrib, axis=1)


def worst_tag(err, xn, use, mask, tags: int):
    """A device model's (score, per-step error, per-feature error): its worst tag's.

    Each tag's error is the mean over its own read features (as :func:`weigh_features` takes
    them); the window's score is the largest, so one tag that leaves the others is not averaged
    away among the tags that still agree. Per-step error: that tag's; per-feature error: every
    feature's, each tag's features scaled to sum to the tag's error (the shares name the tags).
    """
    F = err.shape[-1] // tags
    used, part = _evidence(err, xn, use, mask)
    shape = tf.concat([tf.shape(part)[:2], [tags, F]], 0)
    n = tf.maximum(tf.reduce_sum(tf.reshape(used, shape), -1), 1.0)  # [N, S, C]
    per_tag_step = tf.reduce_sum(tf.reshape(part, shape), -1) / n  # [N, S, C]
    per_tag = tf.reduce_mean(per_tag_step, axis=1)  # [N, C]
    worst = tf.argmax(per_tag, axis=-1, output_type=tf.int32)
    per_step = tf.gather(per_tag_step, worst, axis=2, batch_dims=1)
    per_feature = tf.reshape(tf.reduce_mean(tf.reshape(part, shape) / n[..., None], axis=1), tf.shape(err)[::2])
    return tf.reduce_max(per_tag, -1), per_step, per_feature


class AutoencoderDetector(Detector):
    """Score = mean squared reconstruction error of the normalised window; per step, over features.

    A device model (``masked``) with ``training.device_errors`` ``relations`` reads its tags by
    *leaving each one out*: tag c's error is how
    well the model rebuilds tag c from the other tags alone (one pass per tag, tag c hidden as
    if missing), relative to its typical error in training (``error_scale``). A tag that stops
    following the others is then rebuilt from what they say it should be, so a broken relation
    shows although every tag stays in its own normal range; and the error names the tag. It
    trains that way too: every training window hides one of its tags at random, and the model
    learns to fill it in.
    """

    @property
    def relations(self) -> bool:
        """A device model reading its tags' relations (``training.device_errors``)."""
        return self._tags > 1 and self.cfg.device_errors == "relations"

    def _weights(self):
        return [w for layer in self.layers for w in (layer.trainable_weights)]

    @abstractmethod
    def _reconstruct(self, x, idx): ...

    @property
    def _tags(self) -> int:
        """Tags of a device model (features come tag-major, ``features`` per tag); 0 for a sensor model."""
        per = len(self.features)
        return self.n_features // per if self.masked and self.n_features % per == 0 else 0

    def _tag_onehot(self, c: int):
        per = len(self.features)
        return tf.constant([1.0 if f // per == c else 0.0 for f in range(self.n_features)], tf.float32)

    def _errors(self, xn, idx):
        """[N, S, F] squared errors: plain reconstruction, or leave-one-tag-out (device models)."""
        if not self.relations:
            return tf.square(self._reconstruct(xn, idx) - xn)
        err = tf.zeros_like(xn)
        for c in range(self._tags):
            hide = tf.cast(self._tag_onehot(c), xn.dtype)
            err += hide * tf.square(self._reconstruct(xn * (1.0 - hide), idx) - xn)
        return err

    def _score(self, xn, idx, mask=None):
        err = self._errors(xn, idx)  # [N, S, F]
        if self.relations:
            err = err / tf.gather(self.error_scale, idx)[:, None, :]
        score, per_step, per_feature = weigh_features(err, xn, tf.gather(self.feature_use, idx), mask)
        if not self.relations:
            return score, per_step, per_feature
        return worst_tag(err, xn, tf.gather(self.feature_use, idx), mask, self._tags)

    #: windows per group in one stacked pass of :meth:`_stacked` (bounds its memory)
    STACK_CHUNK = 512

    def _stacked(self, X: np.ndarray, fn) -> list:
        """``fn`` over [G, m, S, F] slices of ``X`` [G, M, S, F] in the training layout, where each
        group meets its own weights once (the serving layout gathers them per row: for a device
        model with leave-one-tag-out that is most of the cost of scoring a group's windows)."""
        return [fn(tf.constant(X[:, i : i + self.STACK_CHUNK])) for i in range(0, X.shape[1], self.STACK_CHUNK)]

    def _fit_error_scale(self, X: np.ndarray) -> None:
        """Each group's typical squared error per feature on its normalised training windows.

        Read on every (S/4)-th window: count windows share S - 1 of their S steps, so these
        still hold each step of the history about four times, at a quarter of the cost of
        the leave-one-tag-out passes (one per tag over each window: after the training loop,
        most of a device model's training time)."""
        X = X[:, :: max(1, self.seq_len // 4)]
        errs = self._stacked(X, tf.function(lambda x: tf.reduce_sum(self._errors(x, None), axis=[1, 2])))
        mean = tf.add_n(errs).numpy() / (X.shape[1] * self.seq_len)
        self.error_scale.assign(np.maximum(mean, ERROR_SCALE_FLOOR).astype(np.float32))

    def score_groups(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        if not self.masked:
            return super().score_groups(windows)
        G, S, F = self.groups, self.seq_len, self.n_features
        xs = [self._check(w, f"group {g}") for g, w in enumerate(windows)]
        M = max(1, max(len(x) for x in xs))
        X = np.zeros((G, M, S, F), np.float32)
        mask = np.zeros((G, M, S, F), np.float32)
        m32, s32 = self.mean.numpy(), self.scale.numpy()
        for g, x in enumerate(xs):
            ok = np.isfinite(x)
            X[g, : len(x)] = np.where(ok, (np.nan_to_num(x) - m32[g]) / s32[g], 0.0)
            mask[g, : len(x)] = ok
        both = np.concatenate([X, mask], axis=-1)

        @tf.function
        def one(xm):
            x, mk = xm[..., :F], xm[..., F:]
            err = self._errors(x, None)  # [G, m, S, F]
            if self.relations:
                err = err / self.error_scale[:, None, None, :]
            m = tf.shape(x)[1]

            def flat(t):
                return tf.reshape(t, [G * m, S, F])

            use = tf.repeat(self.feature_use, m, axis=0)
            if self.relations:
                score = worst_tag(flat(err), flat(x), use, flat(mk), self._tags)[0]
            else:
                score = weigh_features(flat(err), flat(x), use, flat(mk))[0]
            return tf.reshape(score, [G, m])

        scores = np.concatenate([t.numpy() for t in self._stacked(both, one)], axis=1)
        return [scores[g, : len(x)] for g, x in enumerate(xs)]

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
        tags = self._tags if self.relations else 0
        onehots = tf.stack([self._tag_onehot(k) for k in range(max(tags, 1))])  # [C, F]

        @tf.function(jit_compile=c.jit_compile)
        def step(batch, hidden):
            xb = tf.gather(X, batch, axis=1)  # [G, B, S, F]
            xin = xb
            if tags > 1:  # hide one tag per window; the model fills it in from the others
                xin = xb * (1.0 - tf.gather(onehots, hidden)[:, :, None, :])
            with tf.GradientTape() as tape:
                per_group = tf.reduce_mean(tf.square(self._reconstruct(xin, None) - xb), axis=[1, 2, 3])
                loss = tf.reduce_sum(per_group)  # independent groups: the sum keeps gradients apart
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return per_group

        bs = min(c.batch_size, nmax)
        curves: list[list[float]] = [[] for _ in xs]
        for _ in range(c.epochs):
            perm = rng.permutation(nmax).astype(np.int32)
            total, steps = 0.0, 0
            for i in range(0, nmax - bs + 1, bs):
                # (drawn only for device models: a sensor model's random sequence stays as it was)
                hidden = rng.integers(0, tags, (len(xs), bs)) if tags > 1 else np.zeros((len(xs), bs))
                total = step(tf.constant(perm[i : i + bs]), tf.constant(hidden, tf.int32)) + total
                steps += 1
            for g, v in enumerate((total / steps).numpy()):
                curves[g].append(float(v))
        if self.relations:
            self._fit_error_scale(X.numpy())
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

    def score_graph(self, raw, idx, mask=None):
        # float64 end to end, normalisation included, to match scikit-learn on the same inputs.
        mean = tf.cast(tf.gather(self.mean, idx), tf.float64)[:, None, :]
        scale = tf.cast(tf.gather(self.scale, idx), tf.float64)[:, None, :]
        xn = (tf.cast(raw, tf.float64) - mean) / scale
        if mask is not None:
            xn = xn * tf.cast(mask, tf.float64)
        return self._score(xn, idx, mask)

    def _score(self, xn, idx, mask=None):
        flat = tf.reshape(xn, [tf.shape(xn)[0], self.seq_len * self.n_features])
        sv = tf.gather(self.sv, idx)  # [N, M, D]
        d2 = (
            tf.reduce_sum(tf.square(flat), -1)[:, None]
            - 2.0 * tf.einsum("nd,nmd->nm", flat, sv)
            + tf.reduce_sum(tf.square(sv), -1)
        )
        k = tf.exp(-tf.gather(self.gamma, idx)[:, None] * tf.maximum(d2, 0.0))
        decision = tf.reduce_sum(tf.gather(self.dual, idx) * k, -1) + tf.gather(self.intercept, idx)
        sq = tf.square(xn) / self.n_features
        per_feature = tf.reduce_mean(sq, axis=1)  # [N, F]: the deviation each feature adds
        return (
            tf.cast(-decision, tf.float32),
            tf.cast(tf.reduce_sum(sq, -1), tf.float32),
            tf.cast(per_feature, tf.float32),
        )


KINDS: dict[str, type[Detector]] = {k.kind: k for k in (DenseAE, ConvAE, LstmAE, OneClassSVM)}


def make_detector(
    kind: str, groups: int, seq_len: int, n_features: int, cfg: TrainingConfig, masked: bool = False
) -> Detector:
    try:
        cls = KINDS[kind]
    except KeyError:
        raise TrainingError(f"unknown model kind {kind!r}; one of {sorted(KINDS)}") from None
    return cls(groups, seq_len, n_features, cfg, masked)
