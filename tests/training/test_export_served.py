"""Trained SavedModels on the real model server: same scores as in process, threshold inside."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tensorflow as tf
from trainhelpers import history, train_settings

from sensorwatch.core.config import ServingConfig
from sensorwatch.core.windows import sequences
from sensorwatch.serving.client import ScoringClient
from sensorwatch.serving.repository import ModelRepository, read_report
from sensorwatch.serving.server import ModelServer
from sensorwatch.training.trainer import train_fleet

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


@pytest.mark.parametrize("kind,layout", [("dense_ae", "per-sensor"), ("ocsvm", "packed"), ("lstm_ae", "packed")])
def test_served_scores_equal_in_process_scores(tmp_path, kind, layout, caplog):
    s = train_settings(tmp_path, kind, layout, epochs=3)
    hist, _ = history(s, anomalies_per_hour=2.0)
    out = train_fleet(hist, s, progress=False)
    repo = ModelRepository(s.serving.model_base_path)
    caplog.set_level(logging.INFO, logger="sensorwatch.serving")
    srv = ModelServer(repo.read_config(), port=0).start()
    client = ScoringClient(ServingConfig(target=f"127.0.0.1:{srv.port}"))
    try:
        for o in out[:3]:
            X, _ = sequences(hist[o.sensor], 16)
            X = X[-300:]
            sensors = [o.sensor] * len(X) if layout == "packed" else None
            res = client.score(o.model, X, sensors)
            assert res.model_name == o.model and res.model_version == 1
            loaded = tf.saved_model.load(str(repo.model_dir(o.model) / "1"))
            inputs = {k: tf.constant(X[:, :, i]) for i, k in enumerate(("values", "stddev", "count"))}
            if sensors:
                inputs["sensor"] = tf.constant(sensors)
            ref = loaded.signatures["serving_default"](**inputs)
            np.testing.assert_allclose(res.score, ref["score"].numpy(), rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(res.is_anomaly, ref["is_anomaly"].numpy())
            assert res.per_step_error.shape == (len(X), 16)
            # the threshold comes from inside the model and is the calibrated one in the report
            rep = read_report(repo.model_dir(o.model) / "1")
            assert np.allclose(res.threshold, rep["sensors"][o.sensor]["threshold"], rtol=1e-6)
            np.testing.assert_array_equal(res.is_anomaly, res.score > res.threshold)
        if layout == "packed":
            res = client.score(out[0].model, X[:2], ["nobody/none", out[0].sensor])
            assert res.extra["known"].tolist() == [False, True]
            assert np.isnan(res.score[0]) and not res.is_anomaly[0] and np.isfinite(res.score[1])
        assert any("warmed up with 1 requests" in r.getMessage() for r in caplog.records)
    finally:
        client.close()
        srv.stop()
