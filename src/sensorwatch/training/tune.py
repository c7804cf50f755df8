"""Hyperparameter search (optuna TPE) for one sensor or a group of sensors.

Searches learning rate, hidden width, latent width and the window length S over the
given sensors' histories, all trials trained as stacked detectors like ``train_fleet``.
The objective is, with labelled anomalies in validation, minus the window F1 pooled over the sensors at the calibrated
threshold; without labels, the mean validation reconstruction score relative to the
threshold (lower is a tighter model of "normal"). A tuned S only helps if the streaming
job uses it too (``job.seq_len``); the result says so.
"""

from __future__ import annotations

import logging

import numpy as np

from sensorwatch.core.config import Settings
from sensorwatch.core.windows import SensorSeries

log = logging.getLogger("sensorwatch.training")


def tune(
    series: dict[str, SensorSeries],
    settings: Settings,
    trials: int = 20,
    labels: dict[str, list[tuple[int, int]]] | None = None,
    seq_lens: tuple[int, ...] = (8, 16, 32),
) -> dict:
    import optuna

    from sensorwatch.training.fit import fit_calibrated, prepare

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tc, window_ms = settings.training, int(settings.job.window_s * 1000)
    sensors = sorted(series)

    def objective(trial: optuna.Trial) -> float:
        S = trial.suggest_categorical("seq_len", list(seq_lens))
        cfg = tc.model_copy(
            update={
                "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
                "hidden": trial.suggest_categorical("hidden", [8, 16, 32, 64]),
                "latent": trial.suggest_categorical("latent", [2, 4, 8]),
            }
        )
        data = [
            prepare(series[s], (labels or {}).get(s, []), S, settings.job.slide, window_ms, tc.validation_split)
            for s in sensors
        ]
        # the labels judge the trial; they never choose its thresholds (no peeking at the answer)
        cal = fit_calibrated(data, cfg, S, use_labels=False)
        tightness, tp, fp, fn = [], 0, 0, 0
        for g, d in enumerate(data):
            scores, y, thr = cal.val_scores[g], d.val_labels, cal.thresholds[g]
            normal = scores[~y] if (~y).any() else scores
            flag = scores > thr
            tp, fp, fn = tp + int((flag & y).sum()), fp + int((flag & ~y).sum()), fn + int((~flag & y).sum())
            tightness.append(float(np.median(normal)) / max(abs(thr), 1e-12))
        if tp + fn:  # labelled anomalies in validation: pooled F1 decides
            return -tp / (tp + (fp + fn) / 2)
        return float(np.mean(tightness))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=tc.seed))
    study.optimize(objective, n_trials=trials)
    best = dict(study.best_params)
    log.info("best of %d trials: %s (objective %.4g)", trials, best, study.best_value)
    return {
        "best_params": best,
        "best_value": float(study.best_value),
        "trials": len(study.trials),
        "objective": "-F1 on labelled validation windows" if labels else "median/threshold on validation",
        "note": "seq_len applies only if job.seq_len is set to it as well",
    }
