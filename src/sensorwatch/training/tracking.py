"""Every training run as an MLflow run, where teams look for them.

One ``train_fleet`` call is one parent run (the settings, the counts of trained, skipped and
failed sensors). Each model version it publishes is a child run: its name and version (tags
``sensorwatch.model`` and ``sensorwatch.version``, the same as the model server serves), its
layout, kind and data range as parameters; each sensor's loss curve (one step per epoch),
threshold, validation-score quantiles and window counts as metrics; and the version's training
report and score and ROC plots as artifacts. Everything comes from the report the version
carries in ``assets.extra/`` (which stays the source of truth: the model server and the
dashboard read it), so MLflow holds what was published, nothing more.

Runs are logged from the parent process once training ends, not from the worker processes:
one writer for a SQLite store. A tracking store that refuses (a server down) does not undo
the published models: the error is logged, naming the store.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sensorwatch.core.config import Settings, TrackingConfig
from sensorwatch.core.optional import require

log = logging.getLogger("sensorwatch.training")

#: What MLflow takes in one log_batch call (its documented limits).
_MAX_METRICS, _MAX_PARAMS = 1000, 100
#: The report's files a child run keeps as artifacts.
_ARTIFACT_SUFFIXES = (".json", ".png")


def store(settings: Settings) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment): the configured server, or the
    local SQLite default beside the model repository."""
    tc: TrackingConfig = settings.training.tracking
    if tc.uri and tc.uri.startswith("sqlite:///"):  # a local database: its artifacts beside it, not in ./mlruns
        return tc.uri, (Path(tc.uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    if tc.uri:
        return tc.uri, None
    home = Path(settings.serving.model_base_path).resolve().parent
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}", (home / "mlartifacts").as_uri()


def client(settings: Settings):
    """An ``MlflowClient`` on the configured store, and the experiment id (created if new)."""
    require("mlflow", extra="train", packages=("mlflow",))
    from mlflow.tracking import MlflowClient

    uri, artifacts = store(settings)
    c = MlflowClient(tracking_uri=uri)
    name = settings.training.tracking.experiment
    exp = c.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp is not None else c.create_experiment(name, artifact_location=artifacts)
    return c, exp_id


def _flat(prefix: str, obj, out: dict[str, str]) -> dict[str, str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(obj)[:6000]
    return out


def _log(c, run_id: str, params: dict[str, str] | None = None, metrics: list | None = None) -> None:
    from mlflow.entities import Metric, Param

    items = [Param(k, v) for k, v in (params or {}).items()]
    for lo in range(0, len(items), _MAX_PARAMS):
        c.log_batch(run_id, params=items[lo : lo + _MAX_PARAMS])
    ms = [Metric(k, float(v), ts, step) for k, v, ts, step in metrics or []]
    for lo in range(0, len(ms), _MAX_METRICS):
        c.log_batch(run_id, metrics=ms[lo : lo + _MAX_METRICS])


def version_metrics(report: dict, ts: int) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp, step) of one version's report: per sensor, the loss per epoch,
    the threshold, the validation-score quantiles and the window counts (keys carry the
    sensor, ``<sensor>/<metric>``, in a packed model, which holds many)."""
    sensors = report.get("sensors", {})
    several = len(sensors) > 1 or report.get("layout") == "packed"
    out: list[tuple[str, float, int, int]] = []
    for sensor, r in sensors.items():
        pre = f"{sensor}/" if several else ""
        out += [(f"{pre}loss", v, ts, epoch) for epoch, v in enumerate(r.get("loss_curve") or [])]
        if r.get("threshold") is not None:
            out.append((f"{pre}threshold", r["threshold"], ts, 0))
        out += [(f"{pre}val_score_q{q}", v, ts, 0) for q, v in (r.get("val_score_quantiles") or {}).items()]
        out += [(f"{pre}{n}", r[n], ts, 0) for n in ("windows_train", "windows_val", "aggregates") if n in r]
    return out


def version_params(report: dict, model: str, version: int) -> dict[str, str]:
    sensors = report.get("sensors", {})
    starts = [r["data_from"] for r in sensors.values() if "data_from" in r]
    ends = [r["data_to"] for r in sensors.values() if "data_to" in r]
    return {
        "model_name": model,
        "model_version": str(version),
        "layout": str(report.get("layout")),
        "kind": str(report.get("kind")),
        "seq_len": str(report.get("seq_len")),
        "sensors": str(len(sensors)),
        "data_from_ms": str(min(starts)) if starts else "",
        "data_to_ms": str(max(ends)) if ends else "",
        "fingerprint": str(report.get("fingerprint")),
    }


def track(settings: Settings, published: list[tuple[str, int]], counts: dict[str, int], stage: str = "served") -> dict:
    """Log one training run and its published versions; ``{"run_id", "versions"}``, or
    ``{"error"}`` when the store refused (logged; the models stay published). ``stage``: the
    versions' tag ``sensorwatch.stage``: ``served`` (published under the ``latest`` policy) or
    ``canary`` (to be judged by the lifecycle, which then tags it ``stable`` or ``rejected``)."""
    from sensorwatch.serving.repository import ModelRepository, read_report

    if not settings.training.tracking.enabled:
        return {}
    t0 = time.time()
    uri = store(settings)[0]
    require("mlflow", extra="train", packages=("mlflow",))
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        c, exp_id = client(settings)
        now = int(time.time() * 1000)
        parent = c.create_run(exp_id, run_name=f"train {time.strftime('%Y-%m-%d %H:%M:%S')}")
        pid = parent.info.run_id
        params = _flat("training", settings.training.model_dump(mode="json", exclude={"tracking", "workers"}), {})
        params |= {
            "job.seq_len": str(settings.job.seq_len),
            "job.slide": str(settings.job.slide),
            "job.window_s": str(settings.job.window_s),
            "serving.layout": settings.serving.layout,
            "serving.model_base_path": str(Path(settings.serving.model_base_path).resolve()),
        }
        _log(c, pid, params, [(k, v, now, 0) for k, v in counts.items()])
        repo = ModelRepository(settings.serving.model_base_path)
        runs = {}
        for model, version in published:
            vdir = repo.model_dir(model) / str(version)
            report = read_report(vdir) or {}
            child = c.create_run(
                exp_id,
                run_name=f"{model} v{version}",
                tags={
                    "mlflow.parentRunId": pid,
                    "sensorwatch.model": model,
                    "sensorwatch.version": str(version),
                    "sensorwatch.stage": stage,
                },
            )
            cid = child.info.run_id
            _log(c, cid, version_params(report, model, version), version_metrics(report, now))
            for f in sorted((vdir / "assets.extra").glob("*")):
                if f.suffix in _ARTIFACT_SUFFIXES:
                    c.log_artifact(cid, str(f))
            c.set_terminated(cid)
            runs[f"{model}/{version}"] = cid
        c.set_terminated(pid)
    except (MlflowException, SQLAlchemyError, RequestException, OSError) as exc:
        # a store that refuses (a server down, a database it cannot open) must not undo the
        # published models: say so, loudly
        log.error("MLflow tracking at %s failed; the models are published, the run is not tracked: %r", uri, exc)
        return {"error": f"{type(exc).__name__}: {exc}", "uri": uri}
    log.info("tracked %d model version(s) in MLflow run %s (%.1f s)", len(runs), pid, time.time() - t0)
    return {"run_id": pid, "uri": uri, "versions": runs}


def record_verdict(settings: Settings, model: str, version: int, stage: str, metrics: dict[str, float]) -> str | None:
    """Tag the run of ``model`` version ``version`` with the lifecycle's verdict (``sensorwatch.stage``:
    ``stable`` or ``rejected``) and log the verdict's figures on it; the run id, or None when
    tracking is off, the store refused (logged) or no run holds that version."""
    if not settings.training.tracking.enabled:
        return None
    require("mlflow", extra="train", packages=("mlflow",))
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        c, exp_id = client(settings)
        runs = c.search_runs(
            [exp_id],
            f"tags.`sensorwatch.model` = '{model}' AND tags.`sensorwatch.version` = '{version}'",
            max_results=1,
        )
        if not runs:
            log.error("no MLflow run holds %s version %d: its verdict (%s) is not tracked", model, version, stage)
            return None
        rid = runs[0].info.run_id
        c.set_tag(rid, "sensorwatch.stage", stage)
        now = int(time.time() * 1000)
        _log(c, rid, metrics=[(f"verdict/{k}", v, now, 0) for k, v in metrics.items() if v is not None])
        return rid
    except (MlflowException, SQLAlchemyError, RequestException, OSError) as exc:
        log.error("MLflow at %s refused the verdict on %s v%d: %r", store(settings)[0], model, version, exc)
        return None
