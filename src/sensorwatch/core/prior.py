"""The fleet prior: how a sensor with no model of its own is scored from its first count window.

A *prior* is one model per tag (``temperature``, ``pressure``, ...), trained on the windows of
every fleet sensor of that tag. Sensors of one tag differ in level and spread, so the prior
never sees raw values: each sensor's windows are normalised by that sensor's own running
statistics, and the prior learns the *shape* of normal windows of its kind. A new sensor's
windows are normalised the same way, online, from its first window on; until its own model
is promoted (``sensorwatch lifecycle``), its records carry ``"status": "prior"``.

The normalisation is defined once, here, for training (:func:`normalise_series`, a sensor's
windows in order) and for scoring (:class:`OnlineNormaliser`, window by window in the job's
Python worker); a test holds the two equal. The running statistics after a window are those
of every step of every window seen so far, that one included (windows overlap: a step counts
once per window it is in, the same in both):

* ``values``: minus the running mean of the window means, over the running scale;
* ``stddev``: over the running scale;
* ``count``: over the running mean count.

The scale is the spread of the sensor's readings: the variance of its window means plus the
mean within-window variance, so that a sensor whose means have not moved yet still has the
noise of its readings as a scale. numpy only: the job's workers import this.
"""

from __future__ import annotations

import numpy as np

#: Model names of the priors start with this; no sensor's or device's model name can (their
#: names start with a letter or digit, ``sensorwatch.core.contracts.ID_PATTERN``).
PRIOR_PREFIX = "_prior~"

#: The scale never falls below this share of the running level's size (nor below TINY).
REL_FLOOR = 1e-6
TINY = 1e-12


def prior_model_name(tag: str) -> str:
    """The served model that scores a new sensor of ``tag``.

    >>> prior_model_name("temperature")
    '_prior~temperature'
    """
    return PRIOR_PREFIX + tag


def tag_of(sensor: str) -> str:
    """The tag of a ``device/tag`` sensor name.

    >>> tag_of("dev-0003/pressure")
    'pressure'
    """
    return sensor.rpartition("/")[2]


def prior_sensor(tag: str) -> str:
    """What a tag's prior is called where a sensor's name goes: its training report's entry
    (and so its incident seed, :func:`sensorwatch.serving.repository.incident_seeds`) and its
    training outcome. Never a real sensor: ``*`` is not an id character.

    >>> prior_sensor("temperature")
    '*/temperature'
    """
    return f"*/{tag}"


def _window_sums(X: np.ndarray) -> np.ndarray:
    """Per window of [N, S, 3], a row of 5: (steps, sum of means, sum of squared means, sum of
    within-window variances, sum of counts)."""
    v, sd, c = X[..., 0], X[..., 1], X[..., 2]
    ok = np.isfinite(v)
    z = lambda a: np.where(ok, a, 0.0)  # noqa: E731  (a missing step counts for nothing)
    return np.stack(
        [ok.sum(1), z(v).sum(1), z(v * v).sum(1), z(np.nan_to_num(sd) ** 2).sum(1), z(c).sum(1)], axis=1
    ).astype(np.float64)


def _apply(X: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Windows [N, S, 3] normalised by the running sums ``acc`` [N, 5] in force for each."""
    n = np.maximum(acc[:, 0], 1.0)
    mean = acc[:, 1] / n
    var = np.maximum(acc[:, 2] / n - mean * mean, 0.0) + acc[:, 3] / n
    scale = np.maximum(np.sqrt(var), np.maximum(REL_FLOOR * np.abs(mean), TINY))
    count = np.maximum(acc[:, 4] / n, TINY)
    out = np.empty(X.shape, np.float32)
    out[..., 0] = (X[..., 0] - mean[:, None]) / scale[:, None]
    out[..., 1] = X[..., 1] / scale[:, None]
    out[..., 2] = X[..., 2] / count[:, None]
    return out


def normalise_series(X: np.ndarray) -> np.ndarray:
    """One sensor's count windows [N, S, 3] in event-time order, each normalised by the running
    statistics after it (training's side).

    >>> X = np.stack([np.full((3, 4), 10.0) + np.arange(4), np.ones((3, 4)), np.full((3, 4), 5.0)], -1)
    >>> Z = normalise_series(X)
    >>> bool(np.allclose(Z[..., 0].mean(), 0)), bool(np.allclose(Z[..., 2], 1))
    (True, True)
    """
    X = np.asarray(X, np.float64)
    if len(X) == 0:
        return np.zeros(X.shape, np.float32)
    return _apply(X, np.cumsum(_window_sums(X), axis=0))


class OnlineNormaliser:
    """:func:`normalise_series` window by window, for many sensors at once (scoring's side).

    The state is the worker's memory: a restarted worker starts a sensor's statistics again
    from its next window, as a new sensor's. A sensor is forgotten when its own model scores it.
    """

    def __init__(self) -> None:
        self.state: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.state)

    def normalise(self, sensors: list[str], X: np.ndarray) -> np.ndarray:
        """``X`` [N, S, 3], row i a window of ``sensors[i]``, a sensor's rows in event-time order."""
        X = np.asarray(X, np.float64)
        sums = _window_sums(X)
        acc = np.empty_like(sums)
        for i, s in enumerate(sensors):
            run = self.state.get(s)
            run = sums[i].copy() if run is None else run + sums[i]
            self.state[s] = acc[i] = run
        return _apply(X, acc)

    def forget(self, sensors) -> None:
        for s in sensors:
            self.state.pop(s, None)
