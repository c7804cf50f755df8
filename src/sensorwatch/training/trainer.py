"""Train every selected sensor's model, vectorised and in parallel, and publish the results.

Sensors are trained in *chunks*: one chunk is one stacked detector (G sensors in one Keras
model, see :mod:`sensorwatch.training.layers`), so per-model Python overhead is paid once per chunk.
Chunks run in a process pool, one process per core by default. A chunk's sensors are then
exported as one SavedModel each (per-sensor layout: ``subset(g)``) or as one packed
SavedModel (packed layout: the chunk *is* a ``packed-NNN`` group).

Resumable: every version carries a fingerprint of its data and settings in its report; a
sensor (or packed group) whose newest version has the same fingerprint is skipped. A sensor
that cannot be trained (too little data, NaN, a failing chunk) is reported as failed and the
others go on.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from sensorwatch.core.config import Settings
from sensorwatch.core.windows import (
    FEATURES,
    DeviceSeries,
    SensorSeries,
    device_model_name,
    device_of,
    device_series,
    feature_columns,
    matches,
    model_name,
)
from sensorwatch.training.fit import Prepared, fit_calibrated, prepare

log = logging.getLogger("sensorwatch.training")


@dataclass
class Outcome:
    """What happened to one sensor."""

    sensor: str
    model: str
    status: str  # trained | skipped | failed
    version: int | None = None
    detail: str = ""
    windows: int = 0
    threshold: float | None = None
    prior: bool = False  # a fleet prior (sensor "*/<tag>"): counted apart in the summary


@dataclass
class Member:
    """A sensor, or a device (``series`` a :class:`DeviceSeries`: one model sees its tags)."""

    sensor: str
    model: str
    series: SensorSeries | DeviceSeries
    fingerprint: str
    labels: list[tuple[int, int]] = field(default_factory=list)
    false_positives: list[tuple[int, int]] = field(default_factory=list)

    @property
    def is_device(self) -> bool:
        return isinstance(self.series, DeviceSeries)


@dataclass
class Chunk:
    """One worker task: members trained as one stacked detector."""

    members: list[Member]
    packed_name: str | None
    settings_json: str
    repo_base: str
    plots: bool


def fingerprint(
    series: SensorSeries | DeviceSeries,
    settings: Settings,
    labels: list[tuple[int, int]],
    false_positives: list[tuple[int, int]] = (),
) -> str:
    """Changes when the data, the labels or any setting that shapes the model changes."""
    h = hashlib.sha256()
    if isinstance(series, DeviceSeries):
        h.update(("device:" + ",".join(series.tags)).encode())
        h.update(series.feats.astype(np.float64).tobytes())
    else:
        h.update(series.features().astype(np.float64).tobytes())
    h.update(series.window_end.tobytes())
    j = settings.job
    h.update(
        json.dumps(
            [
                settings.training.model_dump(mode="json", exclude={"workers", "tracking"}),
                j.seq_len,
                j.slide,
                j.window_s,
                sorted(labels),
                *([sorted(false_positives)] if false_positives else []),
            ],
            sort_keys=True,
        ).encode()
    )
    return h.hexdigest()[:16]


def _file_tag(sensor: str) -> str:
    return sensor.replace("/", "~")


def _png(fn, *args) -> bytes:
    buf = io.BytesIO()
    fn(buf, *args)
    return buf.getvalue()


#: Where training workers write their native stderr (TensorFlow's and XLA's C++ log lines),
#: relative to the model repository.
WORKER_LOG = "training.log"


def _init_worker(threads: int, log_path: str | None = None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if log_path:
        # TensorFlow's C++ logging (absl: CUDA probes, "Compiled cluster using XLA!") ignores every
        # Python-side setting; the worker's file descriptor 2 goes to the log file instead of the
        # user's terminal. Failures still reach the parent as outcomes, which it reports.
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one tf.function per detector is by design, not retracing
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_chunk(chunk: Chunk) -> list[Outcome]:
    """Train, calibrate and publish one chunk (runs in a worker process)."""
    from sensorwatch.serving.repository import ModelRepository
    from sensorwatch.training.calibrate import plot_roc, plot_scores
    from sensorwatch.training.detectors import TrainingError
    from sensorwatch.training.export import write_saved_model

    t0 = time.time()
    settings = Settings.model_validate_json(chunk.settings_json)
    tc, jc = settings.training, settings.job
    S, window_ms = jc.seq_len, int(jc.window_s * 1000)
    outcomes: list[Outcome] = []
    ready: list[tuple[Member, Prepared]] = []
    devices = chunk.members[0].is_device if chunk.members else False
    width = max(len(m.series.tags) for m in chunk.members) if devices else None
    for m in chunk.members:
        d = prepare(
            m.series,
            m.labels,
            S,
            jc.slide,
            window_ms,
            tc.validation_split,
            width,
            tc.device_features,
            m.false_positives,
        )
        if d.train.shape[0] < tc.min_windows:
            outcomes.append(
                Outcome(
                    m.sensor,
                    m.model,
                    "failed",
                    detail=f"{d.train.shape[0]} training windows "
                    f"from {len(m.series)} aggregates; need {tc.min_windows}",
                    windows=d.windows,
                )
            )
            continue
        ready.append((m, d))
    if chunk.packed_name and outcomes:
        # a packed model must hold all of its group's sensors, or the missing ones would look
        # like sensors without a model; fail the group as a whole and say why
        why = "; ".join(f"{o.sensor}: {o.detail}" for o in outcomes)
        return outcomes + [
            Outcome(m.sensor, m.model, "failed", detail=f"packed group incomplete ({why})") for m, _ in ready
        ]
    if not ready:
        return outcomes
    try:
        cal = fit_calibrated([d for _, d in ready], tc, S, use_labels=True, tags=width)
    except (TrainingError, ValueError, ArithmeticError) as exc:
        log.error("training chunk of %d sensors failed: %s", len(ready), exc)
        return outcomes + [
            Outcome(m.sensor, m.model, "failed", detail=f"{type(exc).__name__}: {exc}") for m, _ in ready
        ]
    refused = [(m, f"calibration refused: {err}") for (m, _), err in zip(ready, cal.errors) if err]
    if refused:
        for m, why in refused:
            log.error("sensor %s not trained: %s", m.sensor, why)
        if chunk.packed_name:  # a packed model holds its whole group or nothing (see above)
            why = "; ".join(f"{m.sensor}: {w}" for m, w in refused)
            return outcomes + [
                Outcome(m.sensor, m.model, "failed", detail=f"packed group incomplete ({why})") for m, _ in ready
            ]
        outcomes += [Outcome(m.sensor, m.model, "failed", detail=why) for m, why in refused]
    det, thresholds = cal.detector, cal.thresholds
    per_sensor: dict[str, dict] = {}
    plots: dict[str, dict[str, bytes]] = {}  # sensor -> file name -> PNG
    for g, (m, d) in enumerate(ready):
        if cal.errors[g]:
            continue  # refused: reported above, never published
        scores, thr, rule = cal.val_scores[g], thresholds[g], cal.rules[g]
        mine = plots.setdefault(m.sensor, {})
        if chunk.plots:
            if rule.kind == "far":
                mine[f"roc-{_file_tag(m.sensor)}.png"] = _png(plot_roc, scores, d.val_labels, thr, m.sensor)
            mine[f"scores-{_file_tag(m.sensor)}.png"] = _png(plot_scores, d.val_ends, scores, thr, m.sensor)
        per_sensor[m.sensor] = {
            "data_from": int(m.series.window_end[0]),
            "data_to": int(m.series.window_end[-1]),
            "aggregates": len(m.series),
            **fit_report(cal, g, d),
            **(
                {"granularity": "device", "tags": list(m.series.tags), "features_used": _device_roles(det, g, m)}
                if devices
                else {"granularity": "sensor", "features_used": det.used_features(g)}
            ),
            "windows_excluded": d.excluded,
            **({"false_positive_rule": cal.false_positive_rules[g]} if cal.false_positive_rules[g] else {}),
            "fingerprint": m.fingerprint,
        }

    repo = ModelRepository(chunk.repo_base)
    base = report_base(settings, det.features)
    wall = time.time() - t0
    if chunk.packed_name:
        sensors = [m.sensor for m, _ in ready]
        report = {
            **base,
            "layout": "packed",
            "model": chunk.packed_name,
            "wall_s": wall,
            "fingerprint": group_fingerprint([m.fingerprint for m, _ in ready]),
            "sensors": per_sensor,
        }
        all_plots = {name: png for mine in plots.values() for name, png in mine.items()}
        warm = _warmup(ready[0][0], ready[0][1], det.features)
        tags = {m.sensor: list(m.series.tags) for m, _ in ready} if devices else None
        version = repo.publish(
            chunk.packed_name,
            lambda p: write_saved_model(
                p,
                det,
                model=chunk.packed_name,
                sensors=None if devices else sensors,
                report=report,
                warmup_windows=warm,
                plots=all_plots,
                devices=tags,
            ),
        )
        return outcomes + [_trained(m, d, version, t) for (m, d), t in zip(ready, thresholds)]
    for g, (m, d) in enumerate(ready):
        if cal.errors[g]:
            continue  # reported above, never published
        one = det.subset(g)
        report = {
            **base,
            "layout": "per-sensor",
            "model": m.model,
            "wall_s": wall / len(ready),
            "fingerprint": m.fingerprint,
            "sensors": {m.sensor: per_sensor[m.sensor]},
        }
        version = repo.publish(
            m.model,
            lambda p, one=one, m=m, d=d, report=report: write_saved_model(
                p,
                one,
                model=m.model,
                sensors=None,
                report=report,
                warmup_windows=_warmup(m, d, det.features),
                plots=plots[m.sensor],
                devices={m.sensor: list(m.series.tags)} if m.is_device else None,
            ),
        )
        outcomes.append(_trained(m, d, version, thresholds[g]))
    return outcomes


def report_base(settings: Settings, features) -> dict:
    """What every published version's report starts with (a sensor model's, a device model's,
    a fleet prior's): the detector, its features (of each tag, for a device model), the windows
    it reads and the training settings."""
    jc = settings.job
    return {
        "kind": settings.training.kind,
        "features": list(features),
        "seq_len": jc.seq_len,
        "slide": jc.slide,
        "window_ms": int(jc.window_s * 1000),
        "training": settings.training.model_dump(mode="json"),
        "created_ms": int(time.time() * 1000),
    }


def fit_report(cal, g: int, d: Prepared) -> dict:
    """Group ``g``'s fit and calibration (``cal`` a :class:`~sensorwatch.training.fit.Calibrated`),
    as its entry in a version's report holds them."""
    scores, rule = cal.val_scores[g], cal.rules[g]
    return {
        "windows_train": int(d.train.shape[0]),
        "windows_val": int(d.val.shape[0]),
        "loss_curve": cal.curves[g],
        "threshold": float(cal.thresholds[g]),
        "threshold_rule": rule.describe(),
        "threshold_fit": rule.to_dict(),
        "val_score_quantiles": {str(q): float(np.quantile(scores, q)) for q in (0.5, 0.9, 0.99, 0.995, 1.0)},
        "incident_seed": dict(zip(("count", "mean", "variance"), cal.detector.calibration.numpy()[g].tolist())),
    }


def _warmup(m: Member, d: Prepared, features: tuple[str, ...]) -> np.ndarray:
    """A few validation windows as the job sends them: [N, S, F], or [N, S, C, F] for a device
    (every feature the job sends; one the model does not read goes as 0, as a present value)."""
    w = d.val[:8]
    if not m.is_device:
        return w
    read = w.reshape(*w.shape[:2], -1, len(features))[:, :, : len(m.series.tags)]
    full = np.zeros((*read.shape[:3], len(FEATURES)), np.float32)
    full[..., feature_columns(features)] = read
    return full


def _device_roles(det, g: int, m: Member) -> dict[str, list[str]]:
    """A device's features by role, named ``tag.feature``."""
    use = det.feature_use.numpy()[g]
    names = [f"{t}.{f}" for t in m.series.tags for f in det.features]
    roles = {"used": 1.0, "one_sided": -1.0, "ignored": 0.0}
    return {k: [n for n, u in zip(names, use) if u == v] for k, v in roles.items()}


def split_granularity(
    series: dict[str, SensorSeries], settings: Settings, granularity: str = "auto"
) -> dict[str, SensorSeries | DeviceSeries]:
    """What to train: sensors by name (one model each), and devices by name (one model each).

    ``auto``: devices matching ``serving.device_models`` get a device model, the rest of the
    fleet keeps one model per sensor (as the job routes them); ``device``: every device;
    ``sensor``: every sensor."""
    if granularity not in ("auto", "sensor", "device"):
        raise ValueError(f"granularity must be auto, sensor or device, got {granularity!r}")
    if granularity == "sensor":
        return dict(series)
    selector = settings.serving.device_models

    def pick(s: str) -> bool:
        return "/" in s and (granularity == "device" or matches(device_of(s), selector))

    out: dict[str, SensorSeries | DeviceSeries] = {k: v for k, v in series.items() if not pick(k)}
    out.update(device_series({k: v for k, v in series.items() if pick(k)}))
    return out


def _trained(m: Member, d: Prepared, version: int, threshold: float) -> Outcome:
    return Outcome(
        m.sensor,
        m.model,
        "trained",
        version,
        windows=int(d.train.shape[0] + d.val.shape[0]),
        threshold=float(threshold),
    )


def group_fingerprint(fps: list[str]) -> str:
    return hashlib.sha256("|".join(sorted(fps)).encode()).hexdigest()[:16]


def _current_fingerprint(repo, name: str) -> str | None:
    from sensorwatch.serving.repository import read_report

    versions = repo.versions(name)
    if not versions:
        return None
    rep = read_report(repo.model_dir(name) / str(versions[-1]))
    return rep.get("fingerprint") if rep else None


def plan(
    series: dict[str, SensorSeries | DeviceSeries],
    settings: Settings,
    labels: dict[str, list[tuple[int, int]]] | None = None,
    workers: int = 1,
    force: bool = False,
    plots: bool = True,
    false_positives: dict[str, list[tuple[int, int]]] | None = None,
) -> tuple[list[Chunk], list[Outcome]]:
    """Chunks to train, and the sensors skipped because their model is up to date."""
    from sensorwatch.serving.repository import ModelRepository

    labels = labels or {}
    sv = settings.serving
    repo = ModelRepository(sv.model_base_path, sv.model_config_file)
    sj = settings.model_dump_json()

    def labels_of(name: str, ser, labels: dict) -> list[tuple[int, int]]:
        if isinstance(ser, DeviceSeries):  # a device's events are its sensors'
            return sorted({iv for t in ser.tags for iv in labels.get(f"{name}/{t}", [])})
        return labels.get(name, [])

    members = []
    for s, ser in sorted(series.items()):
        device = isinstance(ser, DeviceSeries)
        name = (device_model_name if device else model_name)(s, sv.layout, sv.packed_groups)
        lab, fp = labels_of(s, ser, labels), labels_of(s, ser, false_positives or {})
        members.append(Member(s, name, ser, fingerprint(ser, settings, lab, fp), lab, fp))
    skipped: list[Outcome] = []
    chunks: list[Chunk] = []
    if sv.layout == "packed":
        groups: dict[str, list[Member]] = {}
        for m in members:
            groups.setdefault(m.model, []).append(m)
        for name, ms in sorted(groups.items()):
            if not force and _current_fingerprint(repo, name) == group_fingerprint([m.fingerprint for m in ms]):
                skipped += [Outcome(m.sensor, name, "skipped", detail="up to date") for m in ms]
            else:
                chunks.append(Chunk(ms, name, sj, str(repo.base), plots))
        return chunks, skipped
    todo = []
    for m in members:
        if not force and _current_fingerprint(repo, m.model) == m.fingerprint:
            skipped.append(Outcome(m.sensor, m.model, "skipped", detail="up to date"))
        else:
            todo.append(m)
    size = max(1, min(settings.training.chunk_size, -(-len(todo) // max(1, workers))))
    for kind in (False, True):  # a chunk is one stacked detector: sensors and devices apart
        mine = [m for m in todo if m.is_device == kind]
        chunks += [Chunk(mine[i : i + size], None, sj, str(repo.base), plots) for i in range(0, len(mine), size)]
    return chunks, skipped


def train_fleet(
    series: dict[str, SensorSeries],
    settings: Settings,
    *,
    labels: dict[str, list[tuple[int, int]]] | None = None,
    force: bool = False,
    progress: bool = True,
    plots: bool | None = None,
    granularity: str = "auto",
    false_positives: dict[str, list[tuple[int, int]]] | None = None,
    register: bool = True,
    priors: bool = True,
) -> list[Outcome]:
    """Train, publish and register every sensor in ``series``; returns one outcome per sensor
    (per device, for a device model: see :func:`split_granularity` for ``granularity``).

    With more than one worker process, the workers' native log lines go to
    ``<model_base_path>/training.log`` (:data:`WORKER_LOG`), not the terminal. The run and
    every version it publishes are then tracked in MLflow (:mod:`sensorwatch.training.tracking`).

    ``labels``: intervals of known anomalies per sensor (left out of training, positives in
    calibration); ``false_positives``: intervals operators called false alarms (left out of
    training, and the false-positive rule applied: :func:`~sensorwatch.training.fit.false_positive_threshold`).
    ``register=False`` publishes the versions without adding new models to models.config:
    the lifecycle serves a version only once it has judged it. ``priors``: also train the fleet
    priors of the sensors' tags (:mod:`sensorwatch.training.prior`, when ``prior.enabled``);
    the lifecycle, which retrains a few sensors at a time, does not.
    """
    from sensorwatch.serving.repository import ModelRepository

    log_path = Path(settings.serving.model_base_path) / WORKER_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    workers = settings.training.workers or os.cpu_count() or 1
    plots = settings.training.plots if plots is None else plots
    chunks, outcomes = plan(
        split_granularity(series, settings, granularity), settings, labels, workers, force, plots, false_positives
    )
    workers = max(1, min(workers, len(chunks)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(c.members) for c in chunks), unit="sensor", desc=f"training {settings.training.kind}")
    threads = max(1, (os.cpu_count() or 1) // workers)
    try:
        if workers == 1:  # in this process: TensorFlow may already be running, so leave its threads be
            for c in chunks:
                outcomes += _guarded(c, run_chunk)
                bar and bar.update(len(c.members))
        else:
            with ProcessPoolExecutor(
                workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads, str(log_path))
            ) as pool:
                futs = {pool.submit(run_chunk, c): c for c in chunks}
                for f in as_completed(futs):
                    outcomes += _guarded(futs[f], lambda c, f=f: f.result())
                    bar and bar.update(len(futs[f].members))
    finally:
        bar and bar.close()
    trained = sorted({o.model for o in outcomes if o.status == "trained"})
    if trained and register:
        sv = settings.serving
        ModelRepository(sv.model_base_path, sv.model_config_file).register_many(trained)
    if priors and granularity != "device":
        from sensorwatch.training.prior import train_priors

        outcomes += train_priors(series, settings, labels, force)
    for o in outcomes:
        if o.status == "failed":
            log.error("%s %s not trained: %s", "fleet prior" if o.prior else "sensor", o.sensor, o.detail)
    from sensorwatch.training.tracking import track

    published = sorted({(o.model, o.version) for o in outcomes if o.status == "trained" and o.version is not None})
    counts = {k: v for k, v in summary(outcomes).items() if isinstance(v, int)}
    track(settings, published, counts, stage="served" if register else "canary")
    return sorted(outcomes, key=lambda o: o.sensor)


def _guarded(chunk: Chunk, call) -> list[Outcome]:
    """A chunk that crashes (a worker killed, a bug) fails its sensors, not the run."""
    try:
        return call(chunk)
    except Exception as exc:
        log.exception("chunk of %d sensors crashed", len(chunk.members))
        return [Outcome(m.sensor, m.model, "failed", detail=f"{type(exc).__name__}: {exc}") for m in chunk.members]


def summary(outcomes: list[Outcome]) -> dict:
    """Sensors (or devices) trained, skipped and failed; ``priors``: fleet priors trained."""
    out: dict = {"trained": 0, "skipped": 0, "failed": 0, "priors": 0}
    for o in outcomes:
        if o.prior:
            out["priors"] += o.status == "trained"
            continue
        out[o.status] += 1
    out["failures"] = [asdict(o) for o in outcomes if o.status == "failed"]
    return out
