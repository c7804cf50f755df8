"""Every training run is an MLflow run (a real local SQLite store), queried through MLflow's client."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from trainhelpers import history, train_settings

from sensorwatch.serving.repository import ModelRepository, read_report
from sensorwatch.training.tracking import client, store
from sensorwatch.training.trainer import summary, train_fleet

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def _runs(s):
    c, exp_id = client(s)
    runs = c.search_runs([exp_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return c, parents, children


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A packed fleet trained once, tracked in a fresh local store: (settings, history, outcomes, folder)."""
    tmp = tmp_path_factory.mktemp("tracked")
    s = train_settings(tmp, layout="packed", plots=True)
    hist, _ = history(s)
    return s, hist, train_fleet(hist, s, progress=False), tmp


def test_a_training_run_and_each_published_version_are_mlflow_runs(tracked):
    s, hist, out, tmp_path = tracked
    assert summary(out)["trained"] == 6
    uri, _ = store(s)
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}", "the default store sits beside the models"
    c, parents, children = _runs(s)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.metrics["trained"] == 6 and parent.data.metrics["failed"] == 0
    assert parent.data.params["training.kind"] == "dense_ae" and parent.data.params["serving.layout"] == "packed"
    repo = ModelRepository(s.serving.model_base_path)
    published = {(m, v) for m in repo.models() for v in repo.versions(m)}
    by = {(r.data.tags["sensorwatch.model"], int(r.data.tags["sensorwatch.version"])): r for r in children}
    assert set(by) == published == {("packed-000", 1), ("packed-001", 1)}
    for (model, version), run in by.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id and run.info.status == "FINISHED"
        report = read_report(repo.model_dir(model) / str(version))
        assert run.data.params["model_name"] == model and run.data.params["model_version"] == str(version)
        assert run.data.params["fingerprint"] == report["fingerprint"]
        assert int(run.data.params["data_from_ms"]) == min(r["data_from"] for r in report["sensors"].values())
        for sensor, r in report["sensors"].items():
            assert run.data.metrics[f"{sensor}/threshold"] == pytest.approx(r["threshold"])
            assert run.data.metrics[f"{sensor}/val_score_q0.99"] == pytest.approx(r["val_score_quantiles"]["0.99"])
            curve = c.get_metric_history(run.info.run_id, f"{sensor}/loss")
            assert [m.step for m in curve] == list(range(s.training.epochs))
            assert [m.value for m in curve] == pytest.approx(r["loss_curve"])
        arts = {a.path for a in c.list_artifacts(run.info.run_id)}
        assert "sensorwatch_report.json" in arts
        assert {f"scores-{x.replace('/', '~')}.png" for x in report["sensors"]} <= arts
        local = Path(c.download_artifacts(run.info.run_id, "sensorwatch_report.json", str(tmp_path / "dl")))
        assert json.loads(local.read_text())["fingerprint"] == report["fingerprint"]


def test_mlflow_ui_on_the_store_shows_the_runs(tracked):
    """`mlflow ui` (its server) on the default store lists the training run and its versions."""
    import json as _json
    import subprocess
    import sys
    import time
    import urllib.request

    from sensorwatch.stack import free_port

    s, *_ = tracked
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store(s)[0], "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        c, exp_id = client(s)
        body = _json.dumps({"experiment_ids": [exp_id], "max_results": 100}).encode()
        deadline, names = time.monotonic() + 90, None
        while time.monotonic() < deadline and names is None:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=5) as r:
                    names = sorted(run["info"]["run_name"] for run in _json.load(r)["runs"])
            except OSError:
                assert proc.poll() is None, "mlflow ui exited"
                time.sleep(0.5)
        assert names is not None, "mlflow ui did not answer within 90 s"
        assert "packed-000 v1" in names and "packed-001 v1" in names and any(n.startswith("train ") for n in names)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_run_that_publishes_nothing_is_tracked_too(tracked):
    s, hist, *_ = tracked
    train_fleet(hist, s, progress=False)  # same data and settings: every sensor skipped
    _, parents, children = _runs(s)
    assert len(parents) == 2 and len(children) == 2
    assert sorted(p.data.metrics["skipped"] for p in parents) == [0, 6]


def test_a_store_that_refuses_leaves_the_models_published_and_says_so(tmp_path, caplog):
    s = train_settings(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    s.training.tracking.uri = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"  # no store can be made there
    hist, _ = history(s, devices=1)
    with caplog.at_level(logging.ERROR, logger="sensorwatch.training"):
        out = train_fleet(hist, s, progress=False)
    assert summary(out)["trained"] == len(hist) == 3
    assert len(ModelRepository(s.serving.model_base_path).models()) == 3
    assert any(
        "MLflow tracking at sqlite:///" in r.getMessage() and "not tracked" in r.getMessage() for r in caplog.records
    )


def test_tracking_off_writes_no_store(tmp_path):
    s = train_settings(tmp_path)
    s.training.tracking.enabled = False
    hist, _ = history(s, devices=1)
    train_fleet(hist, s, progress=False)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_local_database_uri_keeps_its_artifacts_beside_it(tmp_path):
    """A configured sqlite:/// store puts a new experiment's artifacts beside the database, not
    in ./mlruns of whatever directory the command ran in."""
    from sensorwatch.core.config import Settings

    s = Settings()
    s.training.tracking.uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    uri, artifacts = store(s)
    assert uri == s.training.tracking.uri and artifacts == (tmp_path / "db" / "mlartifacts").as_uri()
    s.training.tracking.uri = "http://mlflow.example:5000"
    assert store(s) == ("http://mlflow.example:5000", None), "a server decides where its artifacts go"
