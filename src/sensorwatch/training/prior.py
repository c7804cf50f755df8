"""Train the fleet priors: one model per tag over the fleet's sensors of that tag, normalised per sensor.

What a prior is and how its windows are normalised: :mod:`sensorwatch.core.prior`. Here:

* a tag gets a prior when at least ``prior.min_sensors`` sensor models are trained on it in
  this run (the devices ``serving.device_models`` selects are left out: they are scored as
  devices);
* each sensor's windows are normalised in order by its own running statistics, split in time
  as a sensor's own model's are (training, then validation after a gap), labelled anomalies
  left out of training, and pooled over the tag's sensors, at most ``prior.max_windows``
  training windows taken evenly from the pool;
* all tags' priors are one stacked detector (one group per tag), calibrated on the pooled
  validation windows like any sensor model, and published as ``_prior~<tag>`` in the model
  repository (registered: the job asks for them by name), whatever the layout;
* resumable: a prior whose sensors' data and settings have not changed is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import numpy as np

from sensorwatch.core.config import Settings
from sensorwatch.core.prior import normalise_series, prior_model_name, prior_sensor, tag_of
from sensorwatch.core.windows import SensorSeries, device_of, matches, sequences
from sensorwatch.training.fit import Prepared, fit_calibrated, labelled_windows, split
from sensorwatch.training.trainer import Outcome, fingerprint, fit_report, report_base

log = logging.getLogger("sensorwatch.training.prior")


def prior_groups(series: dict[str, SensorSeries], settings: Settings) -> dict[str, list[str]]:
    """``{tag: [sensor, ...]}`` of the tags that get a prior from ``series``."""
    by: dict[str, list[str]] = {}
    for s in sorted(series):
        if "/" in s and not matches(device_of(s), settings.serving.device_models):
            by.setdefault(tag_of(s), []).append(s)
    return {t: ss for t, ss in by.items() if len(ss) >= settings.prior.min_sensors}


def _evenly(X: np.ndarray, n: int) -> np.ndarray:
    return X if len(X) <= n else X[np.linspace(0, len(X) - 1, n).round().astype(int)]


def prepare_prior(
    series: list[SensorSeries], settings: Settings, labels: dict[str, list[tuple[int, int]]] | None = None
) -> Prepared:
    """A tag's pooled windows, each sensor's normalised by its own running statistics."""
    jc, tc = settings.job, settings.training
    S, window_ms = jc.seq_len, int(jc.window_s * 1000)
    train, val, ends, total = [], [], [], 0
    for ser in series:
        X, e = sequences(ser, S, jc.slide, window_ms)
        if len(X) == 0:
            continue
        Z = normalise_series(X)
        bad = labelled_windows(e, S, window_ms, (labels or {}).get(ser.sensor, []))
        t, v, ve = split(Z, e, tc.validation_split, S)
        train.append(t[~bad[: len(t)]])
        keep = ~bad[len(Z) - len(v) :]
        val.append(v[keep])
        ends.append(ve[keep])
        total += len(Z)
    cap = settings.prior.max_windows
    tr = _evenly(np.concatenate(train), cap) if train else np.empty((0, S, 3), np.float32)
    va = _evenly(np.concatenate(val), max(100, cap // 4)) if val else np.empty((0, S, 3), np.float32)
    ve = _evenly(np.concatenate(ends), len(va)) if ends else np.empty(0, np.int64)
    return Prepared(tr, va, ve, np.zeros(len(va), bool), total)


def _fingerprint(tag: str, sensors: list[str], series, settings: Settings, labels) -> str:
    h = hashlib.sha256(f"prior:{tag}".encode())
    for s in sensors:
        h.update(fingerprint(series[s], settings, (labels or {}).get(s, [])).encode())
    h.update(json.dumps(settings.prior.model_dump(mode="json"), sort_keys=True).encode())
    return h.hexdigest()[:16]


def train_priors(
    series: dict[str, SensorSeries],
    settings: Settings,
    labels: dict[str, list[tuple[int, int]]] | None = None,
    force: bool = False,
) -> list[Outcome]:
    """Train, publish and register the prior of every tag :func:`prior_groups` selects; one
    outcome per tag (``sensor`` is ``*/<tag>``)."""
    from sensorwatch.serving.repository import ModelRepository, read_report
    from sensorwatch.training.detectors import TrainingError
    from sensorwatch.training.export import write_saved_model

    if not settings.prior.enabled:
        return []
    sv, tc, jc = settings.serving, settings.training, settings.job
    repo = ModelRepository(sv.model_base_path, sv.model_config_file)
    groups = prior_groups(series, settings)
    out: list[Outcome] = []
    todo: list[tuple[str, list[str], str, Prepared]] = []
    for tag, sensors in sorted(groups.items()):
        name, fp = prior_model_name(tag), _fingerprint(tag, sensors, series, settings, labels)
        versions = repo.versions(name)
        if (
            not force
            and versions
            and (read_report(repo.model_dir(name) / str(versions[-1])) or {}).get("fingerprint") == fp
        ):
            out.append(Outcome(prior_sensor(tag), name, "skipped", detail="up to date", prior=True))
            continue
        d = prepare_prior([series[s] for s in sensors], settings, labels)
        if len(d.train) < tc.min_windows or len(d.val) == 0:
            out.append(
                Outcome(prior_sensor(tag), name, "failed", detail=f"{len(d.train)} pooled training windows", prior=True)
            )
            continue
        todo.append((tag, sensors, fp, d))
    if not todo:
        return out
    # in the caller's process: TensorFlow's line per SavedModel written ("Assets written to",
    # input renames) would reach the user's terminal, as the training workers' do not
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(max(logging.getLogger(name).level, logging.WARNING))
    t0 = time.time()
    try:
        cal = fit_calibrated([d for *_, d in todo], tc, jc.seq_len, use_labels=False)
    except (TrainingError, ValueError, ArithmeticError) as exc:
        log.error("fleet priors of %d tag(s) not trained: %s", len(todo), exc)
        return out + [
            Outcome(prior_sensor(t), prior_model_name(t), "failed", detail=f"{type(exc).__name__}: {exc}", prior=True)
            for t, *_ in todo
        ]
    wall = time.time() - t0
    published = []
    for g, (tag, sensors, fp, d) in enumerate(todo):
        name = prior_model_name(tag)
        if cal.errors[g]:
            out.append(
                Outcome(prior_sensor(tag), name, "failed", detail=f"calibration refused: {cal.errors[g]}", prior=True)
            )
            continue
        thr = cal.thresholds[g]
        report = {
            **report_base(settings, cal.detector.features),
            "layout": "prior",
            "model": name,
            "tag": tag,
            "trained_on": sensors,
            "wall_s": wall / len(todo),
            "fingerprint": fp,
            "sensors": {prior_sensor(tag): {"granularity": "prior", **fit_report(cal, g, d), "fingerprint": fp}},
        }
        one = cal.detector.subset(g)
        version = repo.publish(
            name,
            lambda p, one=one, report=report, d=d, name=name: write_saved_model(
                p, one, model=name, sensors=None, report=report, warmup_windows=d.val[:8]
            ),
        )
        published.append(name)
        out.append(
            Outcome(prior_sensor(tag), name, "trained", version, windows=d.windows, threshold=float(thr), prior=True)
        )
        log.info("fleet prior %s v%d trained on %d sensor(s), threshold %.4g", name, version, len(sensors), thr)
    repo.register_many(published)
    return out
