"""``train_fleet``: parallel, resumable, failures isolated, reports and plots in each version."""

from __future__ import annotations

import json

import numpy as np
import pytest
from trainhelpers import history, train_settings

from sensorwatch.core.windows import SensorSeries
from sensorwatch.serving.repository import ModelRepository, read_report
from sensorwatch.simulate.history import label_intervals
from sensorwatch.training.trainer import summary, train_fleet

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def test_parallel_training_publishes_one_model_per_sensor_and_resumes(tmp_path):
    s = train_settings(tmp_path, workers=2, plots=True, chunk_size=2)
    hist, _ = history(s)
    out = train_fleet(hist, s, progress=False)
    assert summary(out)["trained"] == len(hist) == 6
    repo = ModelRepository(s.serving.model_base_path)
    assert repo.models() == sorted(o.model for o in out)
    assert {e.name for e in repo.read_config()} == set(repo.models())
    o = out[0]
    vdir = repo.model_dir(o.model) / "1"
    rep = read_report(vdir)
    sensor_rep = rep["sensors"][o.sensor]
    assert rep["fingerprint"] == sensor_rep["fingerprint"] and rep["layout"] == "per-sensor"
    assert sensor_rep["threshold"] == o.threshold > 0
    assert len(sensor_rep["loss_curve"]) == s.training.epochs
    assert sensor_rep["loss_curve"][-1] < sensor_rep["loss_curve"][0]
    assert sensor_rep["data_from"] == int(hist[o.sensor].window_end[0])
    assert (vdir / "assets.extra" / "tf_serving_warmup_requests").stat().st_size > 0
    assert (vdir / "assets.extra" / f"scores-{o.sensor.replace('/', '~')}.png").read_bytes()[:4] == b"\x89PNG"

    # unchanged data: nothing retrained; one sensor's data changed: only it gets version 2
    again = train_fleet(hist, s, progress=False)
    assert summary(again)["skipped"] == 6 and summary(again)["trained"] == 0
    x = hist[o.sensor]
    hist[o.sensor] = SensorSeries(x.sensor, x.window_end, x.mean + 0.01, x.stddev, x.count)
    third = {r.sensor: r for r in train_fleet(hist, s, progress=False)}
    assert third[o.sensor].status == "trained" and third[o.sensor].version == 2
    assert sum(r.status == "skipped" for r in third.values()) == 5


def test_a_failing_sensor_is_reported_and_the_others_train(tmp_path):
    s = train_settings(tmp_path)
    hist, _ = history(s)
    short = next(iter(hist))
    x = hist[short]
    hist[short] = SensorSeries(x.sensor, x.window_end[:30], x.mean[:30], x.stddev[:30], x.count[:30])
    out = {o.sensor: o for o in train_fleet(hist, s, progress=False)}
    assert out[short].status == "failed" and "need 32" in out[short].detail
    assert all(o.status == "trained" for k, o in out.items() if k != short)
    assert short.replace("/", "~") not in ModelRepository(s.serving.model_base_path).models()


def test_packed_layout_and_labelled_calibration(tmp_path):
    s = train_settings(tmp_path, layout="packed", plots=True, target_far=0.02)
    hist, labels = history(s, anomalies_per_hour=3.0)
    out = train_fleet(hist, s, labels=label_intervals(labels), progress=False)
    assert summary(out)["trained"] == 6
    repo = ModelRepository(s.serving.model_base_path)
    assert repo.models() == ["packed-000", "packed-001"]
    reports = {m: read_report(repo.model_dir(m) / "1") for m in repo.models()}
    assert all(r["layout"] == "packed" for r in reports.values())
    assert sorted(s for r in reports.values() for s in r["sensors"]) == sorted(hist)
    labelled = [
        (m, sn) for m, r in reports.items() for sn, x in r["sensors"].items() if x["threshold_rule"].startswith("ROC")
    ]
    assert labelled, "sensors with labels in validation are calibrated on the ROC curve"
    m, sn = labelled[0]
    assert (repo.model_dir(m) / "1" / "assets.extra" / f"roc-{sn.replace('/', '~')}.png").is_file()
    json.dumps(reports)  # the reports are plain JSON


def test_history_is_deterministic():
    from sensorwatch.core.config import SimulatorConfig
    from sensorwatch.simulate.history import fleet_history

    cfg = SimulatorConfig(devices=1, duration_s=600, start_ms=1_700_000_000_000)
    a, _ = fleet_history(cfg, 5000)
    b, _ = fleet_history(cfg, 5000)
    assert len(a) == len(cfg.tags) and set(a) == set(b)  # an empty history must fail, not pass vacuously
    for k in a:
        np.testing.assert_array_equal(a[k].mean, b[k].mean)


def test_a_refused_calibration_fails_its_sensors_with_the_reason_and_publishes_nothing(tmp_path):
    """A 0.3 quantile flags most normal windows: the threshold is refused, never served."""
    s = train_settings(tmp_path, threshold_quantile=0.3, threshold_margin=1.0)
    hist, _ = history(s)
    out = train_fleet(hist, s, progress=False)
    assert len(out) == 6 and all(o.status == "failed" for o in out)
    assert all(
        "calibration refused: threshold" in o.detail and "of the normal validation windows" in o.detail for o in out
    ), out[0].detail
    assert ModelRepository(s.serving.model_base_path).models() == []
