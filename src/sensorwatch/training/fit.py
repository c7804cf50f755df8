"""One sensor's (or a group's) detector fitted and calibrated in memory, nothing published.

The trainer publishes what :func:`fit_calibrated` returns; the tuner and evaluations use it
as it is, so none of them repeats the loop of windowing, splitting, fitting and calibrating.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensorwatch.core.config import TrainingConfig
from sensorwatch.core.windows import (
    FEATURES,
    DeviceSeries,
    SensorSeries,
    device_sequences,
    feature_columns,
    sequences,
)
from sensorwatch.training.calibrate import CalibrationError, ThresholdRule, fit_threshold


def split(X: np.ndarray, ends: np.ndarray, val_frac: float, seq_len: int):
    """Train on the earlier windows, validate on the later ones, with a gap of S-1 windows so
    that no reading is in both (count windows overlap)."""
    n_val = max(1, int(round(X.shape[0] * val_frac)))
    n_train = max(0, X.shape[0] - n_val - (seq_len - 1))
    return X[:n_train], X[X.shape[0] - n_val :], ends[X.shape[0] - n_val :]


def labelled_windows(ends: np.ndarray, seq_len: int, window_ms: int, labels: list[tuple[int, int]]) -> np.ndarray:
    """Windows that overlap a labelled anomaly interval [start, end)."""
    y = np.zeros(ends.size, dtype=bool)
    starts = ends - seq_len * window_ms
    for a, b in labels:
        y |= (starts < b) & (ends > a)
    return y


@dataclass
class Prepared:
    """One sensor's count windows, split for training and calibration."""

    train: np.ndarray  # [N, S, F], labelled anomalies removed
    val: np.ndarray  # [M, S, F], the latest windows
    val_ends: np.ndarray  # [M] window ends
    val_labels: np.ndarray  # [M] bool: overlaps a labelled anomaly
    windows: int  # all windows of the series
    false_positives: np.ndarray | None = None  # [K, S, F]: windows operators called false alarms
    excluded: int = 0  # windows left out: labelled anomalies (of training), false positives (of both)


def prepare(
    series: SensorSeries | DeviceSeries,
    labels: list[tuple[int, int]],
    seq_len: int,
    slide: int,
    window_ms: int,
    val_frac: float,
    width: int | None = None,
    features: list[str] | tuple[str, ...] = FEATURES,
    false_positives: list[tuple[int, int]] | None = None,
) -> Prepared:
    """Windows as the job forms them, split in time; labelled anomalies never teach "normal".

    ``false_positives``: intervals of incidents an operator called false alarms. Their
    windows are left out of training and of calibration too (an unusual, benign stretch should not reshape what
    the model learns as normal), and kept apart for the false-positive rule
    (:func:`false_positive_threshold`).

    A device's windows are [N, S, C x F] of its ``features`` (``training.device_features``;
    tag-major, NaN where a tag is missing), padded with missing tags to ``width`` tags (a
    packed group of devices with different tag counts)."""
    if isinstance(series, DeviceSeries):
        X4, ends = device_sequences(series, seq_len, slide, window_ms)
        X4 = X4[..., feature_columns(features)]
        pad = (width or X4.shape[2]) - X4.shape[2]
        X4 = np.concatenate([X4, np.full((*X4.shape[:2], pad, X4.shape[3]), np.nan, np.float32)], axis=2)
        X = X4.reshape(*X4.shape[:2], -1)
    else:
        X, ends = sequences(series, seq_len, slide, window_ms)
    y = labelled_windows(ends, seq_len, window_ms, labels)
    fp = labelled_windows(ends, seq_len, window_ms, false_positives or [])
    train, val, val_ends = split(X, ends, val_frac, seq_len)
    out = (y | fp)[: train.shape[0]]
    keep = ~fp[X.shape[0] - val.shape[0] :]  # a false alarm's windows calibrate nothing: the rule sees them
    return Prepared(
        train[~out],
        val[keep],
        val_ends[keep],
        y[X.shape[0] - val.shape[0] :][keep],
        X.shape[0],
        X[fp],
        int(out.sum() + (~keep).sum()),
    )


def false_positive_threshold(threshold: float, fp_scores: np.ndarray, max_raise: float) -> tuple[float, dict]:
    """The false-positive rule: the threshold, raised just past the highest score the new
    model gives a window an operator called a false alarm, at most ``max_raise`` times the
    threshold training chose; and what was done, for the version's report.

    >>> false_positive_threshold(1.0, np.array([0.5, 1.6]), 2.0)[0] > 1.6
    True
    >>> false_positive_threshold(1.0, np.array([0.5, 3.0]), 2.0)[1]["capped"]
    True
    >>> false_positive_threshold(1.0, np.array([0.5]), 2.0)[0]
    1.0
    """
    s = np.asarray(fp_scores, np.float64)
    s = s[np.isfinite(s)]
    peak = float(s.max()) if s.size else float("-inf")
    raised = min(max(threshold, float(np.nextafter(np.float32(peak), np.float32(np.inf)))), max_raise * threshold)
    new = raised if peak >= threshold else threshold
    return new, {
        "false_positive_windows": int(s.size),
        "peak_score": peak if s.size else None,
        "threshold_before": float(threshold),
        "threshold": float(new),
        "capped": bool(peak >= max_raise * threshold),
    }


@dataclass
class Calibrated:
    """A stacked detector of G groups, its loss curves, and each group's validation scores,
    threshold and rule. The thresholds are already in the detector (what serving reads)."""

    detector: object  # training.detectors.Detector (imported lazily: it imports TensorFlow)
    curves: list[list[float]]
    val_scores: list[np.ndarray]
    thresholds: list[float]
    rules: list[ThresholdRule | None]
    errors: list[str | None]
    """why a group's threshold was refused (:class:`CalibrationError`); its threshold is then +inf"""
    false_positive_rules: list[dict | None] | None = None
    """per group, what the false-positive rule did (None: no window was called a false alarm)"""


def seed_of(val_scores: np.ndarray) -> tuple[float, float, float]:
    """``(count, mean, variance)`` of a group's validation scores: the incident stage starts
    the sensor's score history from them (:meth:`sensorwatch.core.incidents.Calibrator.reseed`)."""
    v = np.asarray(val_scores, np.float64)
    v = v[np.isfinite(v)]
    return (float(len(v)), float(v.mean()), float(v.var())) if len(v) else (float("nan"),) * 3


def normal_scores(val_scores: np.ndarray, d: Prepared) -> np.ndarray:
    """The validation scores of windows no label marks: what the incident stage's seed is
    made of, the sensor's *normal* scores (an incident the lifecycle left out of training still
    lies in a later version's validation windows; its scores would inflate the seed's spread,
    and the sensor's calibration would shrug off its next events). All of them where every
    window is labelled."""
    keep = ~np.asarray(d.val_labels, bool)
    return val_scores[keep] if keep.any() else val_scores


def fit_calibrated(
    data: list[Prepared], cfg: TrainingConfig, seq_len: int, use_labels: bool = True, tags: int | None = None
) -> Calibrated:
    """Fit one stacked detector on every group's training windows and calibrate each group's
    threshold on its validation windows (with their labels when ``use_labels``). ``tags``: a
    device model of this many tags (windows [N, S, tags x F], missing values allowed)."""
    from sensorwatch.training.detectors import make_detector

    n_features = len(cfg.device_features) * tags if tags is not None else len(FEATURES)
    det = make_detector(cfg.kind, len(data), seq_len, n_features, cfg, masked=tags is not None)
    curves = det.fit([d.train for d in data])
    val_scores = det.score_groups([d.val for d in data])
    scores, thresholds, rules, errors = [], [], [], []
    for g, d in enumerate(data):
        s = val_scores[g]
        try:
            thr, rule = fit_threshold(
                s,
                quantile=cfg.threshold_quantile,
                margin=det.threshold_margin,
                nonnegative=det.nonnegative_scores,
                labels=d.val_labels,
                target_far=cfg.target_far if use_labels else None,
            )
            err = None
        except CalibrationError as exc:  # this group alone is refused; the others calibrate
            thr, rule, err = float("inf"), None, str(exc)
        scores.append(s)
        thresholds.append(thr)
        rules.append(rule)
        errors.append(err)
    fp_rules: list[dict | None] = [None] * len(data)
    fps = [d.false_positives if d.false_positives is not None else d.val[:0] for d in data]
    if any(len(f) for f in fps):
        for g, fs in enumerate(det.score_groups(fps)):
            if len(fps[g]) and errors[g] is None:
                thresholds[g], fp_rules[g] = false_positive_threshold(thresholds[g], fs, cfg.false_positive_max_raise)
    det.threshold.assign(np.asarray(thresholds, np.float32))
    det.calibration.assign(np.asarray([seed_of(normal_scores(s, d)) for s, d in zip(scores, data)], np.float32))
    return Calibrated(det, curves, scores, thresholds, rules, errors, fp_rules)
