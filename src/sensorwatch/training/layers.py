"""Keras layers holding G independent models side by side ("stacked" along axis 0).

Every weight has a leading group axis G. Two calling modes share the weights:

* training, ``idx=None``: ``x`` is [G, B, ...], group g's rows meet only group g's weights
  (one einsum), so G sensors train at the cost of one vectorised model and their losses,
  gradients and Adam moments stay independent;
* serving, ``idx`` [N]: ``x`` is [N, ...] rows of mixed sensors; each row gathers its own
  group's weights. A per-sensor SavedModel is the G = 1 case of the same code.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def glorot(fan_in: int, fan_out: int):
    """Glorot-uniform per group: Keras' own initializers would count G into the fans, so the
    initial scale (and the model) would depend on how many sensors share the stack."""
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return keras.initializers.RandomUniform(-limit, limit)


def _mix(x, w, idx):
    """x @ w per group: [G,B,...,i] x [G,i,o] (training) or [N,...,i] x gather(w, idx) (serving).

    Written as one batched matmul over a flattened middle (einsum with an ellipsis takes a
    much slower path in TensorFlow).
    """
    if idx is not None:
        w = tf.gather(w, idx)
    shape = tf.shape(x)
    lead = shape[:1]
    flat = tf.reshape(x, tf.concat([lead, [-1, shape[-1]]], 0))
    out = tf.linalg.matmul(flat, w)
    return tf.reshape(out, tf.concat([shape[:-1], tf.shape(w)[-1:]], 0))


def _bias(x, b, idx):
    """Add a per-group bias [G, o] broadcast over every axis between the first(s) and the last."""
    if idx is None:
        b = b[:, None]
        extra = len(x.shape) - 3
    else:
        b = tf.gather(b, idx)
        extra = len(x.shape) - 2
    for _ in range(extra):
        b = tf.expand_dims(b, -2)
    return x + b


class StackedDense(keras.layers.Layer):
    def __init__(self, groups: int, units_in: int, units: int, activation: str | None = None, **kw):
        super().__init__(**kw)
        self.groups, self.units_in, self.units = groups, units_in, units
        self.activation = keras.activations.get(activation)
        self.kernel = self.add_weight(
            shape=(groups, units_in, units), initializer=glorot(units_in, units), name="kernel"
        )
        self.bias = self.add_weight(shape=(groups, units), initializer="zeros", name="bias")

    def call(self, x, idx=None):
        return self.activation(_bias(_mix(x, self.kernel, idx), self.bias, idx))


class StackedConv1D(keras.layers.Layer):
    """'same'-padded 1-D convolution over axis -2 (time), as patches x kernel."""

    def __init__(
        self, groups: int, channels_in: int, filters: int, kernel_size: int, activation: str | None = None, **kw
    ):
        super().__init__(**kw)
        self.k = kernel_size
        self.activation = keras.activations.get(activation)
        self.kernel = self.add_weight(
            shape=(groups, kernel_size * channels_in, filters),
            initializer=glorot(kernel_size * channels_in, kernel_size * filters),
            name="kernel",
        )
        self.bias = self.add_weight(shape=(groups, filters), initializer="zeros", name="bias")

    def call(self, x, idx=None):
        steps = tf.shape(x)[-2]
        lo = (self.k - 1) // 2
        pad = [[0, 0]] * (len(x.shape) - 2) + [[lo, self.k - 1 - lo], [0, 0]]
        xp = tf.pad(x, pad)
        patches = tf.concat([xp[..., j : j + steps, :] for j in range(self.k)], axis=-1)
        return self.activation(_bias(_mix(patches, self.kernel, idx), self.bias, idx))


class StackedLSTM(keras.layers.Layer):
    """An LSTM over axis -2 (time), unrolled (S is small); returns the sequence or the last state."""

    def __init__(self, groups: int, units_in: int, units: int, return_sequences: bool = False, **kw):
        super().__init__(**kw)
        self.units = units
        self.return_sequences = return_sequences
        self.wx = self.add_weight(
            shape=(groups, units_in, 4 * units), initializer=glorot(units_in, 4 * units), name="wx"
        )
        self.wh = self.add_weight(shape=(groups, units, 4 * units), initializer=glorot(units, 4 * units), name="wh")
        # Forget-gate bias 1 (Jozefowicz et al. 2015), as Keras' LSTM does by default.
        self.bias = self.add_weight(
            shape=(groups, 4 * units),
            name="bias",
            initializer=keras.initializers.Constant([0.0] * units + [1.0] * units + [0.0] * (2 * units)),
        )

    def call(self, x, idx=None):
        steps = x.shape[-2]
        xz = _bias(_mix(x, self.wx, idx), self.bias, idx)  # [..., S, 4H]
        lead = tf.shape(xz)[:-2]
        h = tf.zeros(tf.concat([lead, [self.units]], 0), x.dtype)
        c = tf.zeros_like(h)
        outs = []
        for t in range(steps):
            z = xz[..., t, :] + _mix(h, self.wh, idx)
            i, f, g, o = tf.split(z, 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outs.append(h)
        return tf.stack(outs, axis=-2) if self.return_sequences else h
