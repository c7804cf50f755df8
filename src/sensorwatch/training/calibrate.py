"""Score -> threshold: the calibration that travels inside each SavedModel.

Without labels the threshold is a high quantile of scores on held-out normal windows, with
a margin (the SKAB reference protocol's rule). With labels it is the lowest threshold whose
false-alarm rate on labelled-normal windows stays within ``target_far``: a point on the ROC
curve, which :func:`roc_curve` returns for plotting.

Following Merlion's post-rules, the choice is an object: :func:`fit_threshold` returns the
threshold *and* the :class:`ThresholdRule` that produced it, which the trainer writes into
the version's report, so the chain score -> calibration -> threshold is saved whole. The
trainer, the tuner and the benchmarks all calibrate through :func:`fit_threshold`.

>>> import numpy as np
>>> thr, rule = fit_threshold(np.arange(101.0), quantile=0.99, margin=1.5)
>>> round(thr, 2), rule.describe()
(148.5, 'quantile 0.99 x margin 1.5')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np


class CalibrationError(ValueError):
    """A threshold that cannot be trusted: the message says why (the trainer reports the sensor)."""


#: A threshold above this many times the largest validation score is flagged in the report.
FAR_ABOVE_FACTOR = 100.0
#: A threshold that flags more than this share of the normal validation windows is refused.
MAX_FLAGGED_SHARE = 0.5


@dataclass(frozen=True)
class ThresholdRule:
    """How a threshold was chosen from validation scores."""

    kind: Literal["quantile", "far"]
    """quantile: a quantile of normal scores times a margin; far: a point on the ROC curve"""
    quantile: float | None = None
    margin: float | None = None
    target_far: float | None = None
    nonnegative: bool = True
    """quantile rule: scores >= 0 (quantile x margin) or signed (quantile + (margin-1)(quantile-median))"""
    windows: int = 0
    """validation windows the threshold was fitted on"""
    fallback: str | None = None
    """why the configured rule was not used as it is (too few windows for its quantile)"""
    flags: tuple[str, ...] = ()
    """what a reviewer should look at (a threshold far above every validation score)"""

    def describe(self) -> str:
        text = (
            f"ROC: false-alarm rate <= {self.target_far}"
            if self.kind == "far"
            else f"quantile {self.quantile} x margin {self.margin}"
        )
        return text + (f" (fallback: {self.fallback})" if self.fallback else "")

    def to_dict(self) -> dict:
        return asdict(self)


def windows_for(quantile: float) -> int:
    """Validation windows a quantile needs before it is more than the sample's maximum: 1/(1-q).

    >>> windows_for(0.995), windows_for(0.9)
    (200, 10)
    """
    return math.ceil(1.0 / (1.0 - quantile) - 1e-9)


def fit_threshold(
    scores: np.ndarray,
    *,
    quantile: float,
    margin: float,
    nonnegative: bool = True,
    labels: np.ndarray | None = None,
    target_far: float | None = None,
    min_windows: int | None = None,
) -> tuple[float, ThresholdRule]:
    """The threshold for ``scores`` and the rule that chose it.

    With ``labels`` that hold both normal and anomalous windows and a ``target_far``, the ROC
    rule (:func:`far_threshold`); otherwise the quantile rule on the windows not labelled
    anomalous (all of them when every window is). With fewer normal windows than
    ``min_windows`` (default :func:`windows_for` the quantile), the quantile cannot be told
    from the maximum: the rule becomes the maximum x margin, and says so in ``fallback``.

    A threshold that is not finite, that is 0 for scores that cannot be negative (every
    validation window scored 0: a constant signal), or that would flag more than half of the
    normal validation windows is refused with :class:`CalibrationError`; one more than
    :data:`FAR_ABOVE_FACTOR` times the largest validation score is flagged.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = None if labels is None else np.asarray(labels, dtype=bool)
    normal = s if y is None or y.all() else s[~y]
    if y is not None and target_far is not None and y.any() and not y.all():
        thr, rule = far_threshold(s, y, target_far), ThresholdRule("far", target_far=target_far, windows=s.size)
    else:
        need = windows_for(quantile) if min_windows is None else min_windows
        q, fallback = quantile, None
        if normal.size < need:
            q = 1.0
            fallback = (
                f"only {normal.size} validation windows; quantile {quantile} needs {need}, so the maximum x margin"
            )
        thr = quantile_threshold(normal, q, margin, nonnegative)
        rule = ThresholdRule(
            "quantile", quantile=q, margin=margin, nonnegative=nonnegative, windows=normal.size, fallback=fallback
        )
    return thr, _checked(thr, normal, rule)


def _checked(thr: float, normal: np.ndarray, rule: ThresholdRule) -> ThresholdRule:
    if not math.isfinite(thr):
        raise CalibrationError(f"threshold {thr} is not finite")
    if rule.nonnegative and rule.kind == "quantile" and thr <= 0:
        raise CalibrationError(
            f"threshold {thr:.3g}: all {normal.size} validation windows score 0 "
            "(a constant signal?), so any change would alert"
        )
    flagged = float(np.mean(normal > thr)) if normal.size else 0.0
    if flagged > MAX_FLAGGED_SHARE:
        raise CalibrationError(f"threshold {thr:.3g} flags {flagged:.0%} of the normal validation windows")
    top = float(np.max(np.abs(normal))) if normal.size else 0.0
    if top > 0 and abs(thr) > FAR_ABOVE_FACTOR * top:
        return replace(
            rule,
            flags=(
                *rule.flags,
                f"threshold {thr:.3g} is over {FAR_ABOVE_FACTOR:g}x the largest validation score {top:.3g}",
            ),
        )
    return rule


def quantile_threshold(scores: np.ndarray, quantile: float, margin: float, nonnegative: bool = True) -> float:
    """quantile x margin for non-negative scores; quantile + (margin-1)(quantile - median) for signed ones."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0 or not np.isfinite(s).all():
        raise CalibrationError("calibration needs finite validation scores")
    q = float(np.quantile(s, quantile))
    if nonnegative:
        return q * margin
    return q + (margin - 1.0) * (q - float(np.median(s)))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-alarm rate, true-positive rate, threshold) for every distinct score, thresholds descending.

    A window is flagged when its score is *greater* than the threshold, as in serving.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("a ROC curve needs both normal and anomalous labels")
    thr = np.unique(s)[::-1]
    # count scores strictly above each threshold
    order = np.sort(s[~y])
    pos = np.sort(s[y])
    far = (order.size - np.searchsorted(order, thr, side="right")) / order.size
    tpr = (pos.size - np.searchsorted(pos, thr, side="right")) / pos.size
    return far, tpr, thr


def far_threshold(scores: np.ndarray, labels: np.ndarray, target_far: float) -> float:
    """The lowest threshold whose false-alarm rate is at most ``target_far`` (best recall there)."""
    far, _, thr = roc_curve(scores, labels)
    ok = far <= target_far
    return float(thr[ok][-1]) if ok.any() else float(np.max(scores))


def plot_roc(path, scores: np.ndarray, labels: np.ndarray, threshold: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    far, tpr, thr = roc_curve(scores, labels)
    at = np.searchsorted(-thr, -threshold, side="left")
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(far, tpr, lw=1.5)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    if at < far.size:
        ax.scatter([far[at]], [tpr[at]], c="red", zorder=3, label=f"threshold {threshold:.3g}")
        ax.legend(loc="lower right")
    ax.set(xlabel="false-alarm rate", ylabel="true-positive rate", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_scores(path, ends: np.ndarray, scores: np.ndarray, threshold: float, title: str) -> None:
    """Validation scores over event time against the threshold: the picture a reviewer wants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.plot((np.asarray(ends) - ends[0]) / 1000.0 if len(ends) else [], scores, lw=0.8)
    ax.axhline(threshold, c="red", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    ax.set(xlabel="seconds into validation", ylabel="score", title=title)
    ax.set_yscale("symlog", linthresh=max(abs(threshold) / 10, 1e-6))
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
