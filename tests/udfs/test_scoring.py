"""The job's Python half against the real model server (the session's trained fleet)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from jobworld import UNTRAINED
from sensorwatch.app import local
from sensorwatch.core.explain import HINTS
from sensorwatch.core.outputs import WINDOW_SCORES
from sensorwatch.core.windows import model_name, sequences
from sensorwatch.serving.client import ScoringClient
from sensorwatch.simulate.history import fleet_history
from sensorwatch.stack.kafka_broker import free_port
from sensorwatch.udfs.batch import WindowBatch, decode_scores
from sensorwatch.udfs.metrics import Metrics
from sensorwatch.udfs.scoring import BatchScorer

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def _batch(s, sensors: list[str], n: int = 1) -> WindowBatch:
    """The last n count windows of each sensor's clean history."""
    hist = local.history_config(s.simulator, s.simulator.start_ms or int(time.time() * 1000), hours=0.5)
    series, _ = fleet_history(hist, int(s.job.window_s * 1000))
    names, feats, ends = [], [], []
    for sensor in sensors:
        X, e = sequences(series[sensor], s.job.seq_len)
        names += [sensor] * n
        feats.append(X[-n:])
        ends.append(e[-n:])
    end = np.concatenate(ends)
    return WindowBatch(
        names, end - 80_000, end, np.full(end.size, int(time.time() * 1000)), np.concatenate(feats).astype(np.float64)
    )


def test_scores_equal_direct_predict_and_untrained_is_no_model(world):
    s = world.model_copy(deep=True)
    s.job.emit_scores = True
    sensors = ["dev-0000/temperature", "dev-0001/pressure", f"{UNTRAINED}/vibration", "dev-0002/vibration"]
    batch = _batch(s, sensors, n=3)
    metrics = Metrics()
    scorer = BatchScorer(s, metrics)
    try:
        out = scorer.score(batch)
    finally:
        scorer.close()
    *out, packed = out
    assert len(out) == len(batch), "one record per window, then the batch's compact scores"
    recs = [json.loads(o.value) for o in out]
    assert [r["sensor"] for r in recs] == batch.sensors, "records in batch order"
    client = ScoringClient(s.serving)
    for i, (o, r) in enumerate(zip(out, recs)):
        if r["sensor"].startswith(UNTRAINED):
            assert o.kind == "no_model" and r["status"] == "no_model" and r["score"] is None
            continue
        direct = client.score(r["model_name"], batch.features[i : i + 1], sensors=[r["sensor"]])
        assert r["model_name"] == model_name(r["sensor"], "packed", s.serving.packed_groups)
        assert r["model_version"] == direct.model_version
        assert abs(r["score"] - float(direct.score[0])) < 1e-5 and r["threshold"] == float(direct.threshold[0])
        assert o.kind == ("anomaly" if r["is_anomaly"] else "score")
        assert r["values"] == batch.features[i, :, 0].tolist()
    client.close()
    # the incident stage's row: every scored window (not the untrained ones), score for score
    assert packed.kind == WINDOW_SCORES and packed.key is None and packed.value is None
    compact = decode_scores(packed.packed)
    scored = [r for r in recs if r["status"] == "scored"]
    assert sorted(zip(compact.sensors, compact.cols["end"].tolist())) == sorted(
        (r["sensor"], r["window_end"]) for r in scored
    )
    by = {(r["sensor"], r["window_end"]): r for r in scored}
    for k, sensor in enumerate(compact.sensors):
        r = by[(sensor, int(compact.cols["end"][k]))]
        assert compact.models[k] == r["model_name"] and compact.cols["version"][k] == r["model_version"]
        assert compact.cols["score"][k] == r["score"] and compact.cols["threshold"][k] == r["threshold"]
        # the model's seed: its validation windows' count, mean and variance
        assert compact.cols["seed_n"][k] > 0 and compact.cols["seed_var"][k] > 0
        assert 0 <= compact.cols["step"][k] < s.job.seq_len and 0 <= compact.cols["hint"][k] < len(HINTS)
    v = metrics.values()
    assert v["no_model"] == 3 and v["windows_scored"] == 9
    assert len(v["score_latency_ms"]) == 12


def test_unknown_model_per_sensor_layout_is_no_model(world):
    s = world.model_copy(deep=True)
    s.serving.layout = "per-sensor"  # the server holds packed models only: every name is unknown
    scorer = BatchScorer(s)
    try:
        out = scorer.score(_batch(s, ["dev-0000/temperature"]))
    finally:
        scorer.close()
    assert [o.kind for o in out] == ["no_model"], "no scored window: no compact row either"
    assert json.loads(out[0].value)["model_name"] == "dev-0000~temperature"


def test_model_server_down_delays_scoring_and_loses_nothing(world, tmp_path):
    s = world.model_copy(deep=True)
    port = free_port()
    s.serving.port, s.serving.target = port, f"127.0.0.1:{port}"  # nothing listens here yet
    s.serving.deadline_s, s.serving.backoff_initial_s, s.serving.backoff_max_s = 0.5, 0.1, 0.5
    s.job.emit_scores = True
    server = local.ModelServerProcess(s, tmp_path / "late-server.log")
    starter = threading.Timer(2.0, server.start)
    metrics = Metrics()
    scorer = BatchScorer(s, metrics)
    batch = _batch(s, ["dev-0000/temperature", "dev-0001/pressure"], n=4)
    t0 = time.monotonic()
    starter.start()
    try:
        out = scorer.score(batch)
    finally:
        scorer.close()
        starter.join()
        server.stop()
    waited = time.monotonic() - t0
    assert waited > 2.0, "scoring waited for the server"
    assert len(out) == len(batch) + 1 and all(o.kind in ("score", "anomaly") for o in out[:-1])
    assert len(decode_scores(out[-1].packed)) == len(batch)
    v = metrics.values()
    assert v["outages"] == 1 and v["score_retries"] >= 1 and v["outage_ms"] >= 1000
