"""Device models: trained by ``train_fleet`` beside sensor models, served by the real model server.

The device signature takes columns in any order (the model maps each by ``device/tag`` to its
own fixed order), imputes and masks a missing tag, reports a tag it does not know, and returns
each column's share of the score; the packed layout holds devices of different tag counts.
"""

from __future__ import annotations

import numpy as np
import pytest
from trainhelpers import START, history, train_settings

from sensorwatch.core.config import ServingConfig
from sensorwatch.core.windows import device_sequences, device_series
from sensorwatch.serving.client import ScoringClient, device_inputs, parse_response
from sensorwatch.serving.repository import ModelRepository, read_report
from sensorwatch.serving.server import ModelServer
from sensorwatch.training.detectors import make_detector
from sensorwatch.training.trainer import split_granularity, train_fleet

pytestmark = pytest.mark.integration  # the real model server

S = 16


def _settings(tmp_path, layout: str, kind: str = "dense_ae"):
    s = train_settings(tmp_path, kind, layout, epochs=20)
    s.simulator.pumps, s.simulator.relation_faults_per_hour = 2, 0.0
    s.serving.device_models = "pump-*"
    return s


def test_granularity_splits_the_fleet_by_the_selector(tmp_path):
    s = _settings(tmp_path, "per-sensor")
    hist, _ = history(s)
    split = split_granularity(hist, s)
    assert sorted(k for k in split if "/" not in k) == ["pump-0000", "pump-0001"]
    assert sum("/" in k for k in split) == 2 * 3, "the plain devices keep one model per sensor"
    assert split["pump-0000"].tags == ["flow", "power", "pressure", "speed"]
    assert all("/" not in k for k in split_granularity(hist, s, "device"))
    assert split_granularity(hist, s, "sensor").keys() == hist.keys()


@pytest.mark.parametrize("layout", ["per-sensor", "packed"])
def test_device_models_serve_any_column_order_missing_and_unknown_tags(tmp_path, layout):
    s = _settings(tmp_path, layout)
    hist, _ = history(s)
    hist["pump-0001/vibration"] = hist.pop("pump-0001/speed")  # two pumps, different tag sets
    out = {o.sensor: o for o in train_fleet(hist, s, progress=False)}
    assert out["pump-0000"].status == out["pump-0001"].status == "trained", out
    assert out["dev-0000/temperature"].status == "trained"
    repo = ModelRepository(s.serving.model_base_path)
    rep = read_report(repo.model_dir(out["pump-0000"].model) / "1")
    assert rep["sensors"]["pump-0000"]["granularity"] == "device"
    assert rep["sensors"]["pump-0000"]["tags"] == ["flow", "power", "pressure", "speed"]

    live, _ = history(s, start_ms=START + 2 * 3600 * 1000, duration_s=1800)
    ds = device_series({k: v for k, v in live.items() if k.startswith("pump-0000/")})["pump-0000"]
    X, _ = device_sequences(ds, S)
    X = X[:64]
    n = len(X)
    srv = ModelServer(repo.read_config(), port=0).start()
    client = ScoringClient(ServingConfig(target=f"127.0.0.1:{srv.port}"))
    try:

        def score(tags, windows, device="pump-0000"):
            tags = np.asarray([tags] * n, object)
            return parse_response(client.predict(out["pump-0000"].model, device_inputs([device] * n, tags, windows)))

        base = score(ds.tags, X)
        assert np.isfinite(base.score).all() and base.extra["known"].all()
        np.testing.assert_allclose(base.extra["tag_share"].sum(axis=1), 1.0, rtol=1e-5)
        # another column order: the model maps columns by name, the same scores, shares follow
        perm = [2, 0, 3, 1]
        shuffled = score([ds.tags[i] for i in perm], X[:, :, perm])
        np.testing.assert_allclose(shuffled.score, base.score, rtol=1e-5)
        np.testing.assert_allclose(shuffled.extra["tag_share"], base.extra["tag_share"][:, perm], rtol=1e-4, atol=1e-6)
        # the model reads the tags' means (training.device_features): the spreads and counts
        # the job sends with them change nothing
        assert rep["features"] == ["values"] == s.training.device_features
        other_feats = X.copy()
        other_feats[..., 1:] = np.random.default_rng(3).uniform(0, 50, other_feats[..., 1:].shape)
        np.testing.assert_allclose(score(ds.tags, other_feats).score, base.score, rtol=1e-6)
        # a tag missing at some steps is imputed and masked: scores stay finite; a column of
        # padding ("") is no tag at all; a tag the model never saw is reported, not dropped
        gaps = X.copy()
        gaps[:, ::3, 1] = np.nan
        extra = np.concatenate([gaps, np.full((n, S, 2, 3), 7.0, np.float32)], axis=2)
        res = score([*ds.tags, "vibration", ""], extra)
        assert np.isfinite(res.score).all()
        assert res.extra["unknown_tag"].tolist() == [[False] * 4 + [True, False]] * n
        assert (res.extra["tag_share"][:, 4:] == 0).all()
        # a device the model does not hold: known False, no score (the job reports "no model")
        if layout == "packed":
            other = score(ds.tags, X, device="pump-9999")
            assert not other.extra["known"].any() and np.isnan(other.score).all() and not other.is_anomaly.any()
        _the_scorer_publishes_device_records(s, srv.port, ds, X, base)
    finally:
        client.close()
        srv.stop()


def test_a_tag_that_leaves_the_others_is_the_one_named():
    """Leave-one-tag-out: three tags that always move together and one that is noise. One of the
    three follows another stretch of the load (in range, out of step): the window scores high and
    that tag carries the blame (the two that still agree out-vote it)."""
    import tensorflow as tf

    from sensorwatch.core.config import TrainingConfig

    rng = np.random.default_rng(0)
    t = np.arange(3000)
    load = 0.65 + 0.3 * np.sin(2 * np.pi * t / 90) + rng.normal(0, 0.01, t.size)
    feats = np.zeros((t.size, 4, 3))
    feats[:, 0, 0], feats[:, 1, 0], feats[:, 2, 0] = 100 * load, 8 * load**2, 40 * load**3
    feats[:, 3, 0] = rng.normal(5, 1, t.size)
    feats[:, :, 2] = 5.0
    X = np.lib.stride_tricks.sliding_window_view(feats, S, axis=0).transpose(0, 3, 1, 2).reshape(-1, S, 12)
    cfg = TrainingConfig(epochs=25, min_windows=10, device_features=["values", "stddev", "count"])
    det = make_detector("dense_ae", 1, S, 12, cfg, masked=True)
    assert det.relations and det._tags == 4
    det.fit([X[:2500].astype(np.float32)])
    test = X[2600:2700].copy()
    normal, _ = det.score(test)
    broken = test.copy()
    broken[:, :, 3] = X[2645:2745, :, 3]  # tag 1, half a cycle out of step with the others
    sc, _ = det.score(broken)
    assert np.median(sc) > 3 * np.median(normal)
    raw = broken.astype(np.float32)
    _, _, per_feature = det.score_graph(tf.constant(raw), tf.zeros(len(raw), tf.int32), tf.ones_like(raw))
    per_tag = per_feature.numpy().reshape(len(raw), 4, 3).sum(-1)
    hot = sc > np.quantile(normal, 0.99)
    assert hot.mean() > 0.5 and (per_tag[hot].argmax(1) == 1).mean() > 0.8, "the decoupled tag drives the score"


def _the_scorer_publishes_device_records(s, port, ds, X, base) -> None:
    """The job's scorer on a device batch (as ``pack_device_windows`` makes them): one record per
    window naming its tags by share, no-model records for a tag the model does not know, and the
    compact score row with each window's drivers for the incident stage."""
    import json

    from sensorwatch.core.outputs import NO_MODEL, SCORE, WINDOW_SCORES
    from sensorwatch.udfs.batch import DeviceBatch, decode_scores
    from sensorwatch.udfs.scoring import BatchScorer

    s = s.model_copy(deep=True)
    s.serving.target = f"127.0.0.1:{port}"
    s.job.emit_scores = True
    n = len(X)
    feats = np.concatenate([X, np.full((n, S, 1, 3), 3.0, np.float32)], axis=2).astype(np.float64)
    tags = np.asarray([[*ds.tags, "vibration"]] * n, object)
    ends = np.arange(n, dtype=np.int64) * 5000 + 10**12
    scorer = BatchScorer(s)
    try:
        out = scorer.score(DeviceBatch(["pump-0000"] * n, ends - S * 5000, ends, ends, tags, feats))
    finally:
        scorer.close()
    scored = [json.loads(o.value) for o in out if o.kind in ("anomaly", SCORE.kind)]
    assert len(scored) == n and all(r["granularity"] == "device" and r["tag"] is None for r in scored)
    first = scored[0]
    assert first["key"] == f"pump-0000@{ends[0]}" and first["unknown_tags"] == ["vibration"]
    assert [t["tag"] for t in first["tags"]] == [
        ds.tags[c] for c in np.argsort(-base.extra["tag_share"][0], kind="stable") if base.extra["tag_share"][0][c] > 0
    ]
    assert set(first["values"]) == {*ds.tags, "vibration"} and len(first["values"]["flow"]) == S
    unknown = [json.loads(o.value) for o in out if o.kind == NO_MODEL.kind]
    assert len(unknown) == n and unknown[0]["sensor"] == "pump-0000/vibration" and "unknown" in unknown[0]["error"]
    (row,) = [o for o in out if o.kind == WINDOW_SCORES]
    packed = decode_scores(row.packed)
    assert packed.sensors == ["pump-0000"] * n
    assert all(d.split(",")[0].split(":")[0] == r["tags"][0]["tag"] for d, r in zip(packed.drivers, scored))


def test_a_relations_model_takes_its_own_threshold_margin():
    """A relations model's threshold is its validation quantile x
    ``relations_threshold_margin``; a sensor model's, on the same windows' first tag, x
    ``threshold_margin``."""
    from sensorwatch.core.config import TrainingConfig
    from sensorwatch.training.fit import Prepared, fit_calibrated

    rng = np.random.default_rng(0)
    t = np.arange(1200)
    load = 0.65 + 0.3 * np.sin(2 * np.pi * t / 90) + rng.normal(0, 0.01, t.size)
    tags = np.stack([100 * load, 8 * load**2, 40 * load**3], axis=-1)  # [T, 3 tags] of means
    X = np.lib.stride_tricks.sliding_window_view(tags, S, axis=0).transpose(0, 2, 1).astype(np.float32)
    cfg = TrainingConfig(epochs=2, min_windows=10, threshold_margin=1.5, relations_threshold_margin=2.25)

    def prepared(x):
        return Prepared(x[:900], x[-200:], np.arange(200), np.zeros(200, bool), len(x))

    device = fit_calibrated([prepared(X)], cfg, S, use_labels=False, tags=3)
    assert device.detector.relations and device.rules[0].margin == 2.25
    sensor_x = np.concatenate([X[..., :1], np.zeros_like(X[..., :1]), np.ones_like(X[..., :1])], axis=-1)
    sensor = fit_calibrated([prepared(sensor_x)], cfg, S, use_labels=False)
    assert not sensor.detector.relations and sensor.rules[0].margin == 1.5
    q = np.quantile(device.val_scores[0], cfg.threshold_quantile)
    np.testing.assert_allclose(device.thresholds[0], q * 2.25, rtol=1e-4)
