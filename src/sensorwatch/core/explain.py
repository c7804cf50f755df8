"""Why a window scored high: the step and feature that drove it, and a kind hint.

Computed for every scored window at once (numpy over the batch, no per-window Python), so the
incident stage can quote the explanation of an incident's peak window.

With a sensorwatch model's outputs (``per_step_error`` and ``feature_z``: each feature's
value at the blamed step, normalised by the sensor's training mean and scale), the model
explains itself: the **step** is the one with the largest reconstruction error, the
**feature** the one furthest from the sensor's training normal there, and the **hint**:

* ``dropout``: the count fell ``Z`` scales below its training level;
* ``stuck``: the spread collapsed ``Z`` scales below its training level;
* ``spike``: the mean is ``Z`` scales off, and the blamed step holds at least half of the
  window's error;
* ``level_shift``: the mean is off and the error holds from the blamed step to the window's end;
* ``noise``: the mean is not off, the spread rose ``Z`` scales above its training level, and
  the error reaches at least 60 % of the steps; at fewer, scattered steps, ``spike`` (single
  far readings among normal ones raise their windows' spread more than their mean).

When the mean is off it is the feature named, whatever the spread says: a moved mean drags
its step's spread with it.

A model that reports neither (one not trained by sensorwatch) gets the window's own shape
instead: the step furthest from the window's robust centre, and the same hints read against
the window's median (count below half of it, spread zero or over ``NOISE_RATIO`` x it, the
mean ``Z`` robust deviations off at one step or from it to the end).

A hint is a hint: the first rule that holds, or none (index 0).

>>> import numpy as np
>>> f = np.zeros((1, 16, 3)); f[..., 0] = 10.0; f[..., 1] = 1.0; f[..., 2] = 60.0
>>> f[0, 9, 0] = 30.0  # one step's mean far off
>>> step, feature, hint = explain(f, None)
>>> int(step[0]), FEATURES[int(feature[0])], HINTS[int(hint[0])]
(9, 'values', 'spike')
>>> err = np.full((1, 16), 0.1); err[0, 12:] = 5.0  # the model blames the last four steps
>>> z = np.array([[6.0, 0.5, 0.0]])  # the mean, far above its training level
>>> step, feature, hint = explain(f, err, z)
>>> int(step[0]), FEATURES[int(feature[0])], HINTS[int(hint[0])]
(12, 'values', 'level_shift')
"""

from __future__ import annotations

import numpy as np

from sensorwatch.core.windows import FEATURES

#: Kind hints, by index (0: none). The incidents topic carries the name.
HINTS = ("", "spike", "level_shift", "stuck", "dropout", "noise")
Z = 4.0
NOISE_RATIO = 3.0
STUCK_STEPS = 3
SHIFT_STEPS = 3

_MEAN, _SD, _COUNT = (FEATURES.index(f) for f in ("values", "stddev", "count"))


def explain(
    features: np.ndarray, per_step_error: np.ndarray | None, feature_z: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(step, feature, hint)`` int8 arrays [n] for windows ``features`` [n, S, F] (raw values)."""
    x = np.asarray(features, dtype=np.float64)
    n, s, _ = x.shape
    if n == 0:
        empty = np.empty(0, np.int8)
        return empty, empty, empty
    if (
        per_step_error is not None
        and feature_z is not None
        and np.shape(per_step_error) == (n, s)
        and np.shape(feature_z) == (n, x.shape[2])
    ):
        return _by_the_model(np.asarray(per_step_error, np.float64), np.asarray(feature_z, np.float64))
    # no view from the model: the window's own robust centre and spread
    med = np.median(x, axis=1, keepdims=True)
    mad = np.median(np.abs(x - med), axis=1, keepdims=True)
    scale = np.maximum(1.4826 * mad, 1e-9 * np.maximum(np.abs(med), 1.0))
    z = (x - med) / scale  # [n, S, F]
    rows = np.arange(n)
    if per_step_error is not None and np.shape(per_step_error) == (n, s):
        step = np.nanargmax(np.where(np.isfinite(per_step_error), per_step_error, -np.inf), axis=1)
    else:
        step = np.argmax(np.abs(z).max(axis=2), axis=1)
    at = z[rows, step]  # [n, F]
    feature = np.argmax(np.abs(at), axis=1)

    count, sd, mean_z = x[..., _COUNT], x[..., _SD], z[..., _MEAN]
    med_count, med_sd = med[:, 0, _COUNT], med[:, 0, _SD]
    dropout = count[rows, step] < 0.5 * med_count
    stuck = (med_sd > 0) & (np.abs(sd[:, -STUCK_STEPS:]) == 0).all(axis=1)
    noise = (med_sd > 0) & (sd[rows, step] > NOISE_RATIO * med_sd)
    tail = np.arange(s)[None, :] >= step[:, None]  # steps from the attributed one to the end
    sign = np.sign(at[:, _MEAN])[:, None]
    held = ((sign * mean_z > Z) | ~tail).all(axis=1) & (s - step >= SHIFT_STEPS)
    spike = np.abs(at[:, _MEAN]) > Z
    hint = np.zeros(n, np.int8)
    order = (("dropout", dropout), ("stuck", stuck), ("noise", noise), ("level_shift", held), ("spike", spike))
    for name, cond in reversed(order):  # the first rule that holds wins: write the last first
        hint[cond] = HINTS.index(name)
    return step.astype(np.int8), feature.astype(np.int8), hint


def _by_the_model(err: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, s = err.shape
    err = np.where(np.isfinite(err), err, 0.0)
    rows = np.arange(n)
    step = np.argmax(err, axis=1)
    z_mean, z_sd, z_count = z[:, _MEAN], z[:, _SD], z[:, _COUNT]
    # a moved mean drags the spread of its step with it (a spike is one far reading among a
    # few): when the mean is off, the mean is the feature, whatever the spread's z says
    mean_off = np.abs(z_mean) > Z
    feature = np.where(mean_off, _MEAN, np.argmax(np.abs(z), axis=1))
    total = np.maximum(err.sum(axis=1), 1e-30)
    concentrated = err[rows, step] >= 0.5 * total
    after = np.arange(s)[None, :] >= step[:, None]
    held = ((err >= 0.25 * err[rows, step][:, None]) | ~after).all(axis=1) & (s - step >= SHIFT_STEPS)
    spread_up = ~mean_off & (z_sd > Z)
    busy = (err >= 0.2 * err[rows, step][:, None]).mean(axis=1)  # share of steps the error reaches
    rules = (
        ("dropout", z_count < -Z),
        ("stuck", z_sd < -Z),
        ("spike", mean_off & concentrated),
        ("level_shift", mean_off & held),
        ("noise", spread_up & (busy >= 0.6)),
        # the spread jumps at scattered steps: single far readings among normal ones
        ("spike", spread_up),
    )
    hint = np.zeros(n, np.int8)
    for name, cond in reversed(rules):  # the first rule that holds wins: write the last first
        hint[cond] = HINTS.index(name)
    return step.astype(np.int8), feature.astype(np.int8), hint


#: Tags named as a device window's drivers, at most.
TOP_TAGS = 3


def drivers_text(tags, shares, top: int = TOP_TAGS) -> str:
    """A device window's drivers as the compact score row carries them: the ``top`` tags by
    share of the model's error, ``tag:share`` (three decimals) joined by ``,``; tags with no
    share are left out.

    >>> drivers_text(["flow", "power", "pressure"], [0.1, 0.25, 0.65])
    'pressure:0.650,power:0.250,flow:0.100'
    >>> parse_drivers(drivers_text(["flow", "power"], [0.0, 1.0]))
    [{'tag': 'power', 'share': 1.0}]
    """
    order = np.argsort(-np.asarray(shares, np.float64), kind="stable")[:top]
    return ",".join(f"{tags[i]}:{float(shares[i]):.3f}" for i in order if tags[i] and shares[i] > 0)


def parse_drivers(text: str | None) -> list[dict] | None:
    """The inverse of :func:`drivers_text`, as incident records carry it (None: a sensor model)."""
    if not text:
        return None
    out = []
    for part in text.split(","):
        tag, _, share = part.rpartition(":")
        out.append({"tag": tag, "share": float(share)})
    return out
