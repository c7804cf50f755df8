"""The lifecycle on real parts: aggregates, incidents and verdicts on a real broker, versions
served by a real model server, every step queried back from MLflow's client API.

Three sensors share one timeline of 5 s windows:

* ``dev-1/temp`` changes regime at window 800 (its level moves by 6, for good). The job's
  incident stage opens an incident there and closes it 30 windows later (its calibration
  adapts); the lifecycle retrains it without the incident's windows, and promotes the canary.
* ``dev-2/temp`` is retrained on corrupted history (its windows 600-1200 drowned in noise);
  the challenger misses the incident an operator confirmed, and is kept but not served.
* ``dev-3/temp`` had a bump an operator called a false positive; the next version leaves its
  windows out and raises its threshold past them (the false-positive rule).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sensorwatch.core.contracts import aggregate_record
from sensorwatch.core.feedback import label_record
from sensorwatch.core.kafka import producer, send_one
from sensorwatch.core.windows import model_name

W = 5_000  # window ms
T0 = 1_700_000_000_000
N = 1_400  # windows in all


def _series(seed: int, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 60) + rng.normal(0, 0.1, n)


def _publish(settings, sensor: str, means: np.ndarray, upto: int, since: int = 0, sd: float = 0.5) -> None:
    p = producer(settings.kafka)
    for i in range(since, upto):
        end = T0 + (i + 1) * W
        rec = aggregate_record(sensor, end - W, end, float(means[i]), sd, 5)
        p.send(
            settings.kafka.topics.aggregates,
            key=f"{sensor}@{end}".encode(),
            value=json.dumps(rec).encode(),
            timestamp_ms=end,
        )
    p.flush()
    p.close()


def _incident(settings, sensor: str, first: int, last: int, closed: bool = True) -> str:
    """An incident as the job writes it: opened, then closed; ``first``/``last`` window indexes."""
    start, end = T0 + (first + 1) * W, T0 + (last + 1) * W
    iid = f"{sensor}@{start}"
    base = {"incident_id": iid, "sensor": sensor, "device": sensor.split("/")[0], "start": start}
    send_one(
        settings.kafka, settings.kafka.topics.incidents, base | {"event": "opened", "end": None, "windows": 1}, iid
    )
    if closed:
        rec = base | {"event": "closed", "end": end, "windows": last - first + 1, "event_window_end": end}
        send_one(settings.kafka, settings.kafka.topics.incidents, rec, iid)
    return iid


@pytest.fixture
def lifecycle_settings(settings, tmp_path):
    s = settings
    s.serving.model_base_path = tmp_path / "models"
    s.serving.layout = "per-sensor"
    s.training.epochs = 40
    s.training.workers = 1
    s.training.plots = False
    s.lifecycle.holdout_s = 200 * W / 1000
    s.lifecycle.history_s = 2_000 * W / 1000
    # this world's histories are short (a retrain's seed: some 240 validation windows, where the
    # defaults' 24 h give thousands): its learning period is scaled with them (the calibration rule)
    s.job.incidents.learning_windows = 100
    return s


def test_regime_change_worse_challenger_and_false_positive(lifecycle_settings):
    from mlflow.tracking import MlflowClient

    from sensorwatch.core.windows import SensorSeries, sequences
    from sensorwatch.serving.client import ScoringClient, served_states
    from sensorwatch.serving.repository import ModelRepository, read_report
    from sensorwatch.serving.server import ModelServer
    from sensorwatch.training.lifecycle import Evidence, Ledger, cycle_once, due
    from sensorwatch.training.tracking import client as mlflow_client

    s = lifecycle_settings
    d1, d2, d3 = _series(1), _series(2), _series(3)
    d1[800:] += 6.0  # the regime change
    d2[600:1200] += np.random.default_rng(9).normal(0, 8.0, 600)  # corrupted history
    d2[1300:1310] += 4.0  # a real fault, confirmed by an operator
    d3[1000:1008] += 2.5  # a bump an operator calls a false alarm
    sensors = {"dev-1/temp": d1, "dev-2/temp": d2, "dev-3/temp": d3}

    # 1. the first versions, on the first 800 windows: no champion, promoted on the target
    for sensor, v in sensors.items():
        _publish(s, sensor, v, 800)
    first = cycle_once(s, now_ms=T0 + 800 * W)
    assert {v["model"]: (v["stage"], v["challenger"]) for v in first} == {
        model_name(x): ("stable", 1) for x in sensors
    }, first
    repo = ModelRepository(s.serving.model_base_path)
    assert all(e.policy == "specific" and e.labels == {"stable": 1} for e in repo.read_config())

    srv = ModelServer(
        repo.read_config(), port=0, config_file=repo.config_file, poll_wait_s=0.2, config_poll_wait_s=0.2
    ).start()
    s.serving.target = srv.target
    client = ScoringClient(s.serving, attempts=0)
    try:
        # 2. the rest of the stream, the incidents and the verdicts
        for sensor, v in sensors.items():
            _publish(s, sensor, v, N, since=800)
        _incident(s, "dev-1/temp", 800, 829)
        confirmed = _incident(s, "dev-2/temp", 1300, 1309)
        fp = _incident(s, "dev-3/temp", 1000, 1007)
        for iid, label in ((confirmed, "true-positive"), (fp, "false-positive")):
            send_one(s.kafka, s.kafka.topics.labels, label_record(iid, label, note="test"), iid)

        ser1 = SensorSeries("dev-1/temp", T0 + (np.arange(N) + 1) * W, d1, np.full(N, 0.5), np.full(N, 5.0))
        X, ends = sequences(ser1, s.job.seq_len, s.job.slide, W)
        after = X[ends > T0 + 1_200 * W]
        alerts_before = client.score(model_name("dev-1/temp"), after).is_anomaly.mean()
        assert alerts_before > 0.9, "version 1 alerts on every window of the new regime"

        # 3. what is due: the lasting change and the false positive, not the schedule (it ran at step 1)
        now = T0 + N * W
        ev = Evidence.read(s)
        todo = due(s, ev, dict.fromkeys(sensors, N), Ledger(s), now)
        assert set(todo) == {"dev-1/temp", "dev-3/temp"}, todo
        assert todo["dev-1/temp"].startswith("lasting change") and todo["dev-3/temp"].startswith("false positive")

        verdicts = {v["model"]: v for v in cycle_once(s, client, now_ms=now)}
        v1 = verdicts[model_name("dev-1/temp")]
        assert v1["stage"] == "stable" and v1["challenger"] == 2 and v1["champion"] == 1, v1
        assert v1["far_champion"] > 0.9 and v1["far_challenger"] < 0.05, v1
        assert [v for v, st in v1["served"].items() if st == "AVAILABLE"] == [2], "the promoted version alone serves"
        rep1 = read_report(repo.model_dir(model_name("dev-1/temp")) / "2")["sensors"]["dev-1/temp"]
        assert rep1["windows_excluded"] >= 30, "the incident's windows were left out of training"
        alerts_after = client.score(model_name("dev-1/temp"), after).is_anomaly.mean()
        assert alerts_after < 0.05, (alerts_before, alerts_after)

        # the false positive: its windows left out, the threshold raised past them
        rep3 = read_report(repo.model_dir(model_name("dev-3/temp")) / "2")["sensors"]["dev-3/temp"]
        rule = rep3["false_positive_rule"]
        assert rule["false_positive_windows"] > 0 and rep3["windows_excluded"] >= rule["false_positive_windows"]
        assert rule["threshold"] >= rule["threshold_before"]
        assert rule["threshold"] > rule["peak_score"] or rule["capped"], rule
        assert rep3["threshold"] == pytest.approx(rule["threshold"], rel=1e-6)

        # 4. an operator asks for dev-2: the corrupted challenger misses the confirmed fault
        (v2,) = cycle_once(s, client, only="dev-2/*", now_ms=now)
        assert v2["stage"] == "rejected" and "misses 1 confirmed incident" in v2["reason"], v2
        assert v2["detected_champion"] == 1 and v2["detected_challenger"] == 0
        m2 = model_name("dev-2/temp")
        assert repo.versions(m2) == [1, 2], "the rejected version is kept on disk"
        assert served_states(client, m2) == {1: "AVAILABLE"}, "the stable version alone keeps serving"
        assert client.score(m2, after[:4]).model_version == 1
    finally:
        client.close()
        srv.stop()

    # 5. every step in MLflow, through its client API
    mc, exp = mlflow_client(s)
    assert isinstance(mc, MlflowClient)
    runs = mc.search_runs([exp], "tags.`sensorwatch.model` != ''")
    stage = {(r.data.tags["sensorwatch.model"], r.data.tags["sensorwatch.version"]): r for r in runs}
    assert stage[(model_name("dev-1/temp"), "1")].data.tags["sensorwatch.stage"] == "stable"
    r12 = stage[(model_name("dev-1/temp"), "2")]
    assert r12.data.tags["sensorwatch.stage"] == "stable" and r12.data.metrics["verdict/promoted"] == 1.0
    assert r12.data.metrics["verdict/far_champion"] > 0.9
    r22 = stage[(model_name("dev-2/temp"), "2")]
    assert r22.data.tags["sensorwatch.stage"] == "rejected" and r22.data.metrics["verdict/promoted"] == 0.0
    ledger = Ledger(s).state
    assert len(ledger["verdicts"]) == 3 + 2 + 1 and ledger["last_schedule_ms"] == T0 + 800 * W
    assert f"{fp}:false-positive" in ledger["handled"], "a verdict acted on does not trigger again"


def test_incidents_and_verdicts_become_what_training_leaves_out_and_what_judging_checks():
    """Every incident is left out of training; a false positive goes to the rule instead and
    counts as normal when judging; a confirmed one must still be flagged; an expected one
    (a test, maintenance) is neither normal nor required."""
    from sensorwatch.training.lifecycle import Evidence

    inc = {
        f"a/x@{start}": {"incident_id": f"a/x@{start}", "sensor": "a/x", "start": start, "end": start + 50_000}
        for start in (100_000, 200_000, 300_000, 400_000)
    }
    verdicts = {
        "a/x@200000": label_record("a/x@200000", "false-positive"),
        "a/x@300000": label_record("a/x@300000", "true-positive"),
        "a/x@400000": label_record("a/x@400000", "expected"),
    }
    left_out, false_pos, confirmed = Evidence(inc, verdicts).intervals(W)
    assert left_out["a/x"] == [(95_000, 150_000), (295_000, 350_000), (395_000, 450_000)]
    assert false_pos["a/x"] == [(195_000, 250_000)]
    assert confirmed["a/x"] == [(295_000, 350_000)]
    assert all(iv not in left_out["a/x"] for iv in false_pos["a/x"]), "a false alarm counts as normal when judging"

    # an incident still open (its opened record only) reaches up to now: its later windows are
    # not known to be normal, and must not count as such when judging
    inc["a/x@500000"] = {"incident_id": "a/x@500000", "event": "opened", "sensor": "a/x", "start": 500_000, "end": None}
    left_out, _, _ = Evidence(inc, verdicts).intervals(W, now_ms=900_000)
    assert left_out["a/x"][-1] == (495_000, 900_000)
    left_out, _, _ = Evidence(inc, verdicts).intervals(W)
    assert left_out["a/x"][-1] == (495_000, 500_000), "with no now, up to its latest record"


def test_due_tries_a_new_sensor_again_only_with_more_history_and_never_an_excluded_one(settings, tmp_path):
    """A new sensor whose first version failed or was rejected stays on its prior until it has
    ``new_sensor_windows`` more aggregates (not retrained at every check); ``lifecycle.exclude``
    keeps a sensor out of every trigger; the schedule passes over a sensor with nothing new
    since its last pass."""
    from sensorwatch.training.lifecycle import Evidence, Ledger, due

    s = settings
    s.serving.model_base_path = tmp_path / "models"
    s.lifecycle.new_sensor_windows = 10
    s.lifecycle.exclude = "watermark/*"
    ledger = Ledger(s)
    now = T0 + 1_000 * W
    ledger.state["last_schedule_ms"] = now  # the schedule has just run
    counts = {"dev-1/temp": 50, "dev-2/temp": 5, "watermark/flush": 50}
    assert due(s, Evidence(), counts, ledger, now) == {"dev-1/temp": "new sensor (50 aggregates)"}
    ledger.state["new_tried"] = {"dev-1/temp": 50}  # tried at 50 aggregates: failed or rejected
    assert due(s, Evidence(), counts, ledger, now + 1_000) == {}
    assert due(s, Evidence(), counts | {"dev-1/temp": 59}, ledger, now + 1_000) == {}
    later = now + int(s.lifecycle.interval_s * 1000)
    ledger.state["last_schedule_ms"] = later
    assert due(s, Evidence(), counts | {"dev-1/temp": 60}, ledger, later) == {
        "dev-1/temp": "new sensor (60 aggregates)"
    }
    ledger.state["last_schedule_ms"] = None  # the schedule: every sensor with history, but the excluded one
    assert due(s, Evidence(), counts, ledger, later) == {"dev-1/temp": "schedule", "dev-2/temp": "schedule"}
    # the next scheduled pass: only the sensors with aggregates newer than the last one
    ledger.state["last_schedule_ms"] = now
    latest = {"dev-1/temp": now - W, "dev-2/temp": later, "watermark/flush": later}
    assert due(s, Evidence(), counts, ledger, later, latest) == {"dev-2/temp": "schedule"}


def _windows(settings, sensor: str, means: np.ndarray, lo: int, hi: int, sd: float = 0.5):
    """A WindowBatch of ``sensor``'s count windows ending at aggregates lo..hi-1, as the job forms them."""
    from sensorwatch.core.windows import SensorSeries, sequences
    from sensorwatch.udfs.batch import WindowBatch

    n = len(means)
    ser = SensorSeries(sensor, T0 + (np.arange(n) + 1) * W, means, np.full(n, sd), np.full(n, 5.0))
    X, ends = sequences(ser, settings.job.seq_len, settings.job.slide, W)
    keep = (ends >= T0 + (lo + 1) * W) & (ends < T0 + (hi + 1) * W)
    end = ends[keep]
    return WindowBatch([sensor] * int(keep.sum()), end - settings.job.seq_len * W, end, end, X[keep].astype(np.float64))


def test_a_new_sensor_is_scored_by_its_prior_then_by_its_own_model(lifecycle_settings):
    """A sensor added to a served fleet: its first count window is scored by its tag's fleet
    prior (status ``prior``); once it has ``new_sensor_windows`` aggregates the lifecycle trains
    its own model (no champion: promoted), and from then on its own model scores it."""
    from sensorwatch.core.prior import prior_model_name
    from sensorwatch.serving.client import ScoringClient
    from sensorwatch.serving.repository import ModelRepository
    from sensorwatch.serving.server import ModelServer
    from sensorwatch.training.data import from_kafka
    from sensorwatch.training.lifecycle import Ledger, cycle_once
    from sensorwatch.training.trainer import summary, train_fleet
    from sensorwatch.udfs.batch import decode_scores
    from sensorwatch.udfs.scoring import BatchScorer

    s = lifecycle_settings
    s.lifecycle.new_sensor_windows = 300
    fleet = {f"dev-{i}/temp": _series(i) for i in (1, 2, 3)}
    for sensor, v in fleet.items():
        _publish(s, sensor, v, 800)
    # `sensorwatch train` on the fleet: a model per sensor and the tag's prior
    out = summary(train_fleet(from_kafka(s.kafka, s.kafka.topics.aggregates, None, None), s, progress=False))
    assert (out["trained"], out["priors"], out["failed"]) == (3, 1, 0), out
    repo = ModelRepository(s.serving.model_base_path)
    assert prior_model_name("temp") in {e.name for e in repo.read_config()}
    ledger = Ledger(s)
    ledger.state["last_schedule_ms"] = T0 + 800 * W  # the schedule has just run: only triggers act
    ledger.save()

    srv = ModelServer(
        repo.read_config(), port=0, config_file=repo.config_file, poll_wait_s=0.2, config_poll_wait_s=0.2
    ).start()
    s.serving.target = srv.target
    client = ScoringClient(s.serving, attempts=0)
    scorer = BatchScorer(s)
    new = 3.0 * _series(7) + 40.0  # another level and spread than the fleet's sensors (readings' too)
    try:
        # its first count window (its S-th aggregate): the prior scores it, and every one after
        _publish(s, "dev-9/temp", new, 320, sd=1.5)
        early = scorer.score(_windows(s, "dev-9/temp", new, 0, 320, sd=1.5))
        compact = decode_scores(early[-1].packed)
        S = s.job.seq_len
        assert compact.cols["end"][0] == T0 + S * W, "from the first complete count window"
        assert len(compact) == 320 - S + 1 and set(compact.models) == {prior_model_name("temp")}
        assert (compact.cols["prior"] == 1).all() and [o.kind for o in early[:-1] if o.kind == "no_model"] == []
        assert compact.cols["anomaly"].mean() < 0.05, "the prior, normalised per sensor, is quiet on a normal sensor"

        # the lifecycle: a new sensor with enough history is trained, judged against the prior
        # that scores it now (on the hold-out, normalised as the scorer does), and promoted
        (v,) = cycle_once(s, client, now_ms=T0 + 320 * W)
        assert v["model"] == model_name("dev-9/temp") and v["stage"] == "stable", v
        assert v["why"] == ["new sensor (320 aggregates)"] and v["champion"] is None
        assert v["champion_models"] == [f"{prior_model_name('temp')} v1"], v
        assert v["far_champion"] is not None and v["far_challenger"] <= v["far_champion"] + s.lifecycle.far_tolerance

        # from now on its own model scores it; the prior's running statistics are let go
        later = scorer.score(_windows(s, "dev-9/temp", new, 320, 330, sd=1.5))
        compact = decode_scores(later[-1].packed)
        assert set(compact.models) == {model_name("dev-9/temp")} and (compact.cols["prior"] == 0).all()
        assert len(scorer.normaliser) == 0
    finally:
        scorer.close()
        client.close()
        srv.stop()


def test_a_challenger_whose_seed_would_start_the_sensor_learning_again_is_not_promoted(lifecycle_settings):
    """The calibration rule: a version trained on a short history carries a small incident seed;
    served, it would put its sensor back in the incident stage's learning period (no alert) for
    hours. It does not replace a champion under which the sensor has left that period (its seed
    and the windows since its promotion); the other way round this rule does not stand in the way."""
    from sensorwatch.core.windows import SensorSeries
    from sensorwatch.serving.repository import ModelRepository
    from sensorwatch.training.judge import VersionScorer, judge
    from sensorwatch.training.trainer import train_fleet

    s = lifecycle_settings
    s.training.epochs = 10
    n, holdout = 2_400, 2_200
    v = _series(5, n)
    ser = SensorSeries("dev-5/temp", T0 + (np.arange(n) + 1) * W, v, np.full(n, 0.5), np.full(n, 5.0))
    repo = ModelRepository(s.serving.model_base_path)
    versions = {}
    for name, lo in (("long", 0), ("short", 1_850)):
        (o,) = train_fleet(
            {ser.sensor: ser.between(T0 + lo * W, T0 + holdout * W + 1)},
            s,
            force=True,
            progress=False,
            granularity="sensor",
            register=False,
            priors=False,
        )
        assert o.status == "trained", o
        versions[name] = VersionScorer(o.model, repo.model_dir(o.model) / str(o.version))
    learning = s.job.incidents.learning_windows
    long_, short = versions["long"], versions["short"]
    assert short.seed_count(ser.sensor) < learning <= long_.seed_count(ser.sensor)

    def verdict(challenger, champion):
        return judge(
            challenger.model,
            challenger,
            champion,
            {ser.sensor: ser},
            T0 + holdout * W,
            {},
            {},
            seq_len=s.job.seq_len,
            slide=s.job.slide,
            window_ms=W,
            far_tolerance=1.0,  # the false-alarm rule out of the way: the calibration rule alone
            learning_windows=learning,
        )

    worse = verdict(short, long_)
    assert not worse.promote and "learning period" in worse.reason, worse.reason
    assert worse.per_sensor[ser.sensor]["relearns"]["champion_history"] >= long_.seed_count(ser.sensor)
    better = verdict(long_, short)
    assert better.promote and "relearns" not in better.per_sensor[ser.sensor], better.reason
    # a champion with a short seed, promoted just now: the sensor is still learning, nothing to lose
    short.served_from_ms = T0 + n * W
    assert verdict(short, short).promote
    short.served_from_ms = T0 + (n - learning) * W  # the sensor's windows since have taken it out
    assert not verdict(short, short).promote
