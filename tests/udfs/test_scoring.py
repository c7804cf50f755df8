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
from sensorwatch.udfs.batch import WindowBatch, decode_scores, encode
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


@pytest.fixture(scope="module")
def explode():
    """``explode(batch, packed, emit_scores)``: the job's JVM record builder (``explode_records``)
    run in a Flink table environment over one batch and its compact scores; its (kind, k, v) rows."""
    from pyflink.table import DataTypes

    from sensorwatch.jobs.pipeline import function_env

    env = function_env("explode_records")
    row = DataTypes.ROW([DataTypes.FIELD("batch", DataTypes.BYTES()), DataTypes.FIELD("packed", DataTypes.BYTES())])

    def run(batch: bytes, packed: bytes, emit_scores: bool) -> list[tuple[str, str, str]]:
        env.create_temporary_view("explode_input", env.from_elements([(bytearray(batch), bytearray(packed))], row))
        try:
            emit = "TRUE" if emit_scores else "FALSE"
            sql = f"SELECT r.kind, r.k, r.v FROM explode_input, LATERAL TABLE(explode_records(batch, packed, {emit})) AS r"
            with env.execute_sql(sql).collect() as rows:
                return [(r[0], r[1], r[2]) for r in rows]
        finally:
            env.drop_temporary_view("explode_input")

    return run


def test_scores_equal_direct_predict_and_untrained_is_no_model(world, explode):
    s = world.model_copy(deep=True)
    s.job.emit_scores = True
    s.prior.enabled = False  # the untrained device's tags have priors: test_fleet_prior_scores_*
    sensors = ["dev-0000/temperature", "dev-0001/pressure", f"{UNTRAINED}/vibration", "dev-0002/vibration"]
    batch = _batch(s, sensors, n=3)
    metrics = Metrics()
    scorer = BatchScorer(s, metrics)
    try:
        out = scorer.score(batch)
    finally:
        scorer.close()
    *out, packed = out
    assert [o.kind for o in out] == ["no_model"] * 3, "Python makes the no-model records, in batch order"
    # a sensor model's records: built in the JVM from the batch and its compact scores
    built = explode(encode(batch), packed.packed, True)
    assert len(out) + len(built) == len(batch), "one record per window"
    recs = [json.loads(o.value) for o in out] + [json.loads(v) for _, _, v in built]
    kinds = [o.kind for o in out] + [k for k, _, _ in built]
    assert [k for _, k, _ in built] == [f"{r['sensor']}@{r['window_end']}" for r in recs[len(out) :]]
    assert sorted((r["sensor"], r["window_end"]) for r in recs) == sorted(zip(batch.sensors, batch.end.tolist()))
    client = ScoringClient(s.serving)
    row_of = {(x, int(e)): i for i, (x, e) in enumerate(zip(batch.sensors, batch.end))}
    for kind, r in zip(kinds, recs):
        i = row_of[(r["sensor"], r["window_end"])]
        if r["sensor"].startswith(UNTRAINED):
            assert kind == "no_model" and r["status"] == "no_model" and r["score"] is None
            continue
        direct = client.score(r["model_name"], batch.features[i : i + 1], sensors=[r["sensor"]])
        assert r["model_name"] == model_name(r["sensor"], "packed", s.serving.packed_groups)
        assert r["model_version"] == direct.model_version
        assert abs(r["score"] - float(direct.score[0])) < 1e-5 and r["threshold"] == float(direct.threshold[0])
        assert kind == ("anomaly" if r["is_anomaly"] else "score")
        assert r["values"] == batch.features[i, :, 0].tolist()
        assert r["per_step_error"] == pytest.approx(direct.per_step_error[0].tolist(), rel=1e-5, abs=1e-9)
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
    # without emit_scores the JVM builds the anomalies' records alone
    only = explode(encode(batch), packed.packed, False)
    assert [(k, key) for k, key, _ in only] == [(k, key) for k, key, _ in built if k == "anomaly"]


def test_fleet_prior_scores_a_sensor_no_model_knows(world, explode):
    """The untrained device's sensors are scored by their tags' priors (trained with the world's
    models), on windows normalised by each sensor's running statistics; the records say
    ``prior``; a tag with no prior leaves its windows ``no_model``."""
    from sensorwatch.core.prior import normalise_series

    s = world.model_copy(deep=True)
    s.job.emit_scores = True
    new = [f"{UNTRAINED}/vibration", f"{UNTRAINED}/temperature"]
    b = _batch(s, [*new, "dev-0000/temperature"], n=6)
    # each sensor's 6 windows in two batches of 3, in order; and a tag without a prior in each
    halves = [[i for i in range(len(b)) if i % 6 // 3 == k] + [0] for k in (0, 1)]
    first, second = (
        WindowBatch(
            [b.sensors[i] for i in h[:-1]] + ["dev-0009/humidity"], b.start[h], b.end[h], b.closed[h], b.features[h]
        )
        for h in halves
    )
    metrics = Metrics()
    scorer = BatchScorer(s, metrics)
    try:
        out1 = scorer.score(first)
        assert len(scorer.normaliser) == 2, "the new sensors' running statistics, not the trained one's"
        out2 = scorer.score(second)
    finally:
        scorer.close()
    client = ScoringClient(s.serving)
    for batch, out in ((first, out1), (second, out2)):
        *python, packed = out
        assert [(o.kind, json.loads(o.value)["sensor"]) for o in python] == [("no_model", "dev-0009/humidity")]
        recs = [json.loads(v) for _, _, v in explode(encode(batch), packed.packed, True)]
        assert len(recs) == len(batch) - 1, "one record per scored window"
        compact = decode_scores(packed.packed)
        for k, r in enumerate(recs):
            assert compact.sensors[k] == r["sensor"] and int(compact.cols["prior"][k]) == (r["status"] == "prior")
            if r["sensor"] in new:
                assert r["status"] == "prior" and r["model_name"] == f"_prior~{r['sensor'].split('/')[1]}"
            else:
                assert r["status"] == "scored" and r["model_name"].startswith("packed-")
    # a prior's score is its model's on the window normalised by the sensor's windows so far
    for sensor in new:
        rows = [i for i, x in enumerate(b.sensors) if x == sensor]
        Z = normalise_series(b.features[rows])
        direct = client.score(f"_prior~{sensor.split('/')[1]}", Z[3:])
        got = decode_scores(out2[-1].packed)
        mine = [k for k, x in enumerate(got.sensors) if x == sensor]
        np.testing.assert_allclose(got.cols["score"][mine], direct.score, rtol=1e-5, atol=1e-7)
        assert (got.cols["seed_n"][mine] > 0).all(), "a prior seeds the incident stage like a model"
    client.close()
    v = metrics.values()
    assert v["prior"] == 12 and v["no_model"] == 2 and v["windows_scored"] == 18


def test_jvm_records_equal_the_record_contract(explode):
    """``explode_records`` writes :func:`~sensorwatch.core.contracts.anomaly_record`, field for
    field in its order (processing time aside); only anomalies without ``emit_scores``; a score
    row that names another window than its batch's row is an error, not a wrong record."""
    from sensorwatch.core.contracts import anomaly_record
    from sensorwatch.udfs.batch import SCORE_COLUMNS, ScoreBatch, encode_scores

    rng = np.random.default_rng(3)
    n, S = 4, 5
    end = 1_795_000_000_000 + 5000 * np.arange(n)
    batch = WindowBatch(
        ["d1/t", "d2/flow", "d3/x", "d1/t"], end - 25_000, end, end + 7, np.abs(rng.normal(1, 1, (n, S, 3)))
    )
    rows = np.array([2, 0, 3, 1])  # a call's order, not the batch's
    cols = {c: np.zeros(n) for c in SCORE_COLUMNS}
    cols |= {
        "row": rows,
        "end": end[rows],
        "closed": end[rows] + 7,
        "version": np.array([3, 3, 4, 4]),
        "score": rng.uniform(0, 2, n),
        "threshold": np.full(n, 1.0),
        "anomaly": np.array([1, 0, 1, 0]),
    }
    pse = rng.uniform(0, 1, (n, S))
    pse[3] = np.nan  # a model without per-step errors
    models = ["packed-001", "packed-001", "packed-002", "packed-002"]
    scores = ScoreBatch([batch.sensors[r] for r in rows], models, cols, None, pse)
    built = explode(encode(batch), encode_scores(scores), True)
    assert [k for k, _, _ in built] == ["anomaly", "score", "anomaly", "score"]
    for j, (_kind, key, v) in enumerate(built):
        r = int(rows[j])
        got = json.loads(v)
        want = anomaly_record(
            sensor=batch.sensors[r],
            window_start=int(batch.start[r]),
            window_end=int(batch.end[r]),
            values=batch.features[r, :, 0].tolist(),
            stddev=batch.features[r, :, 1].tolist(),
            counts=batch.features[r, :, 2].tolist(),
            score=float(cols["score"][j]),
            threshold=1.0,
            is_anomaly=bool(cols["anomaly"][j]),
            model_name=models[j],
            model_version=int(cols["version"][j]),
            processing_ts=got["processing_ts"],
            per_step_error=None if j == 3 else pse[j].tolist(),
            window_closed_ts=int(batch.closed[r]),
        )
        assert list(got) == list(want), "the contract's fields, in its order"
        assert got == want and key == want["key"]
    assert [k for k, _, _ in explode(encode(batch), encode_scores(scores), False)] == ["anomaly", "anomaly"]
    bad = dict(cols, row=np.array([1, 0, 3, 1]))
    with pytest.raises(Exception, match="does not match window"):
        explode(encode(batch), encode_scores(ScoreBatch(scores.sensors, models, bad, None, pse)), True)


def test_unknown_model_per_sensor_layout_is_no_model(world):
    s = world.model_copy(deep=True)
    s.serving.layout = "per-sensor"  # the server holds packed models only: every name is unknown
    s.prior.enabled = False
    scorer = BatchScorer(s)
    try:
        out = scorer.score(_batch(s, ["dev-0000/temperature"]))
    finally:
        scorer.close()
    assert [o.kind for o in out] == ["no_model"], "no scored window: no compact row either"
    assert json.loads(out[0].value)["model_name"] == "dev-0000~temperature"
    s.prior.enabled = True  # NOT_FOUND (per-sensor), like known = False (packed), falls back to the prior
    scorer = BatchScorer(s)
    try:
        out = scorer.score(_batch(s, ["dev-0000/temperature"]))
    finally:
        scorer.close()
    assert [o.kind for o in out] == [WINDOW_SCORES]
    assert decode_scores(out[0].packed).models == ["_prior~temperature"]


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
    assert len(out) == 1 and out[0].kind == WINDOW_SCORES, "every window scored: records come from the JVM"
    assert len(decode_scores(out[-1].packed)) == len(batch)
    v = metrics.values()
    assert v["outages"] == 1 and v["score_retries"] >= 1 and v["outage_ms"] >= 1000
