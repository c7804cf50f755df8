"""The model lifecycle: retrain from what the job wrote, judge, and serve only what is better.

One *cycle* (:func:`run_cycle`) takes the sensors that are due and:

1. reads their aggregates (the aggregates topic) over ``lifecycle.history_s`` up to the
   hold-out, the last ``lifecycle.holdout_s``, which training never sees;
2. reads the incidents topic and operators' verdicts (the labels topic). Every incident's
   windows are left out of training; those called ``false-positive`` are also handed to the
   false-positive rule (:func:`sensorwatch.training.fit.false_positive_threshold`);
3. pins every affected model to the version it serves (policy ``specific``, label ``stable``),
   so that what training publishes is not served by the ``latest`` policy;
4. trains and publishes the challengers (``train_fleet(register=False)``, MLflow stage
   ``canary``);
5. judges each against its champion (:mod:`sensorwatch.training.judge`) and either pins the
   challenger (``stable``: the model server swaps with no failed request) or keeps it on disk,
   not served (``rejected``). The verdict goes to MLflow (the version's run: tag
   ``sensorwatch.stage``, metrics ``verdict/*``) and to the ledger, ``lifecycle.json`` beside
   the model repository.

A packed model holds a group of sensors, so a sensor due retrains its whole group.

What makes a sensor due (:func:`due`): the schedule (every sensor, every ``interval_s``); an
incident of at least ``lasting_change_windows`` windows that has closed (a lasting change);
a new false-positive verdict; a sensor with no model and ``new_sensor_windows`` aggregates;
an operator's request (``sensorwatch lifecycle --once --sensors ...``).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from sensorwatch.core.config import Settings
from sensorwatch.core.feedback import is_label_record
from sensorwatch.core.windows import SensorSeries, device_of, matches, model_name

log = logging.getLogger("sensorwatch.lifecycle")

Intervals = dict[str, list[tuple[int, int]]]

#: How the new-sensor trigger's reason starts (the ledger tells a new sensor's tries by it).
NEW_SENSOR = "new sensor"


@dataclass
class Evidence:
    """The incidents the job found and the operators' verdicts on them, newest record of each."""

    incidents: dict[str, dict] = field(default_factory=dict)
    verdicts: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def read(cls, settings: Settings) -> Evidence:
        """Both topics from their start (a record that is not JSON is logged and passed over:
        the job and ``sensorwatch label`` write these topics, and the forwarder dead-letters them)."""
        from sensorwatch.core.kafka import read_topic

        ev = cls()
        t = settings.kafka.topics

        def take_incident(m) -> None:
            rec = _json(m)
            if isinstance(rec, dict) and "incident_id" in rec and "sensor" in rec:
                old = ev.incidents.get(rec["incident_id"])
                if old is None or old.get("event") != "closed":
                    ev.incidents[rec["incident_id"]] = rec

        def take_label(m) -> None:
            rec = _json(m)
            if is_label_record(rec):
                ev.verdicts[rec["incident_id"]] = rec

        read_topic(settings.kafka, t.incidents, take_incident)
        read_topic(settings.kafka, t.labels, take_label)
        return ev

    def intervals(self, window_ms: int, now_ms: int | None = None) -> tuple[Intervals, Intervals, Intervals]:
        """Per sensor: (anomalies: left out of training, and not normal when judging; called
        false positives; confirmed). An incident covers the aggregates of its anomalous windows:
        from its first window's last aggregate to its last window's end; one still open, up to
        ``now_ms`` (its later windows are not yet known to be normal), or to its latest record's
        window where ``now_ms`` is None."""
        anomalies: Intervals = {}
        false_pos: Intervals = {}
        confirmed: Intervals = {}
        for iid, rec in self.incidents.items():
            end = rec.get("end") or rec.get("event_window_end") or rec["start"]
            if rec.get("event") != "closed" and now_ms is not None:
                end = max(int(end), int(now_ms))
            iv = (int(rec["start"]) - window_ms, int(end))
            label = (self.verdicts.get(iid) or {}).get("label")
            s = rec["sensor"]
            if label == "false-positive":
                false_pos.setdefault(s, []).append(iv)
                continue
            anomalies.setdefault(s, []).append(iv)
            if label == "true-positive":
                confirmed.setdefault(s, []).append(iv)
        return anomalies, false_pos, confirmed


def _json(m):
    try:
        return json.loads(m.value)
    except (TypeError, ValueError) as exc:
        log.warning("unreadable record on %s at %d/%d passed over: %s", m.topic, m.partition, m.offset, exc)
        return None


class Ledger:
    """``lifecycle.json`` in ``lifecycle.state_dir`` (default: beside the model repository): when the schedule last ran, which
    incidents and verdicts were acted on, each new sensor's aggregates when it was last tried, and every verdict (the newest 1,000)."""

    def __init__(self, settings: Settings):
        home = settings.lifecycle.state_dir or Path(settings.serving.model_base_path).resolve().parent
        home.mkdir(parents=True, exist_ok=True)
        self.path = Path(home) / "lifecycle.json"
        self.state: dict = {"last_schedule_ms": None, "handled": [], "verdicts": [], "new_tried": {}}
        if self.path.is_file():
            self.state |= json.loads(self.path.read_text())

    def save(self) -> None:
        self.state["handled"] = self.state["handled"][-10_000:]
        self.state["verdicts"] = self.state["verdicts"][-1_000:]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.path)


@functools.lru_cache(maxsize=65_536)
def _report_sensors(version_dir: str, _mtime_ns: int) -> frozenset[str]:
    """The sensors a published version's report names; a version folder does not change once
    published, so each is read once (the folder's mtime in the key: a number published again)."""
    from sensorwatch.serving.repository import read_report

    return frozenset((read_report(Path(version_dir)) or {}).get("sensors", {}))


def _known_sensors(settings: Settings) -> set[str]:
    """Sensors some served version holds (its report names them): models.config read once, each
    version's report once per process (checked every ``check_s``, for every model)."""
    from sensorwatch.serving.repository import ModelRepository

    sv = settings.serving
    repo = ModelRepository(sv.model_base_path, sv.model_config_file)
    known: set[str] = set()
    for e in repo.read_config():
        v = repo.served_version(e.name, e)
        if v is not None:
            d = repo.model_dir(e.name) / str(v)
            known |= _report_sensors(str(d), d.stat().st_mtime_ns)
    return known


def managed(settings: Settings, sensor: str) -> bool:
    """Whether the lifecycle trains ``sensor``: not one of the devices ``serving.device_models``
    selects (device models are left to ``sensorwatch train``), nor one ``lifecycle.exclude`` names."""
    return not matches(device_of(sensor), settings.serving.device_models) and not matches(
        sensor, settings.lifecycle.exclude
    )


def due(
    settings: Settings,
    evidence: Evidence,
    counts: dict[str, int],
    ledger: Ledger,
    now_ms: int,
    latest: dict[str, int] | None = None,
) -> dict[str, str]:
    """``{sensor: why}`` of the sensors to retrain now (see the module docstring); ``counts``:
    each sensor's aggregates in the history; ``latest``: each one's newest window end. The
    schedule takes the sensors with aggregates newer than its last pass (one that stopped
    reporting has nothing new to learn). A new sensor whose first version failed or was
    rejected is tried again once it has ``new_sensor_windows`` more aggregates, not at every
    check (its prior scores it meanwhile)."""
    lc = settings.lifecycle
    out: dict[str, str] = {}
    last = ledger.state.get("last_schedule_ms")
    if last is None or now_ms - last >= lc.interval_s * 1000:
        fresh = [s for s in counts if last is None or latest is None or latest.get(s, last + 1) > last]
        out |= dict.fromkeys(fresh, "schedule")
    handled = set(ledger.state["handled"])
    for iid, rec in evidence.incidents.items():
        if iid in handled or rec.get("event") != "closed" or int(rec.get("windows") or 0) < lc.lasting_change_windows:
            continue
        out.setdefault(rec["sensor"], f"lasting change ({iid}, {rec['windows']} windows)")
    for iid, rec in evidence.verdicts.items():
        key = f"{iid}:{rec['label']}"
        if rec["label"] == "false-positive" and key not in handled:
            out.setdefault(rec["sensor"], f"false positive ({iid})")
    known = _known_sensors(settings)
    tried = ledger.state.get("new_tried", {})
    for s, n in counts.items():
        if s in known or n < lc.new_sensor_windows:
            continue
        if s in tried and n < tried[s] + lc.new_sensor_windows:
            continue
        out.setdefault(s, f"{NEW_SENSOR} ({n} aggregates)")
    return {s: why for s, why in out.items() if managed(settings, s)}


def _push_config(repo, client) -> None:
    """Tell the server models.config now (ReloadConfig), so that a pin is in force before
    anything is published; the server's own poll would read it later. A server that is down
    reads the file when it starts."""
    if client is None:
        return
    import grpc

    try:
        client.reload_config(repo.config_file.read_text())
    except grpc.RpcError as exc:
        log.warning("model server did not take models.config now (%s); it reads the file on its next poll", exc.code())


def _span(settings: Settings, now_ms: int) -> tuple[int, int]:
    """(where the training history starts, where the hold-out starts) for a cycle at ``now_ms``."""
    holdout_from = now_ms - int(settings.lifecycle.holdout_s * 1000)
    return holdout_from - int(settings.lifecycle.history_s * 1000), holdout_from


def _history(settings: Settings, now_ms: int) -> dict[str, SensorSeries]:
    """Every sensor's aggregates from the history's start up to ``now_ms``, from the aggregates topic."""
    from sensorwatch.training.data import from_kafka

    return from_kafka(settings.kafka, settings.kafka.topics.aggregates, _span(settings, now_ms)[0], now_ms + 1)


def _served_priors(settings: Settings, repo, registered: dict):
    """``prior(sensor)``: the fleet prior that scores a sensor no model holds (the served version
    of ``_prior~<tag>``, loaded once per cycle), or None: no prior served, or priors are off."""
    from sensorwatch.core.prior import prior_model_name, tag_of
    from sensorwatch.training.judge import PriorScorer

    loaded: dict[str, PriorScorer | None] = {}

    def prior(sensor: str) -> PriorScorer | None:
        tag = tag_of(sensor)
        if tag not in loaded:
            name = prior_model_name(tag)
            v = repo.served_version(name, registered[name]) if name in registered and settings.prior.enabled else None
            loaded[tag] = None if v is None else PriorScorer(name, repo.model_dir(name) / str(v), tag)
        return loaded[tag]

    return prior


def run_cycle(
    settings: Settings,
    sensors: dict[str, str],
    now_ms: int | None = None,
    client=None,
    evidence: Evidence | None = None,
    series: dict[str, SensorSeries] | None = None,
    ledger: Ledger | None = None,
) -> list[dict]:
    """Retrain, judge and promote or reject the models of ``sensors`` (``{sensor: why}``);
    one verdict dict per published challenger. ``client``: a ScoringClient on the model
    server, to push each pin at once and wait for a promotion to be served (None: the file only)."""
    from sensorwatch.serving.client import wait_alone
    from sensorwatch.serving.repository import ModelRepository
    from sensorwatch.training.judge import VersionScorer, judge
    from sensorwatch.training.tracking import record_verdict
    from sensorwatch.training.trainer import train_fleet

    lc, jc, sv = settings.lifecycle, settings.job, settings.serving
    now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
    window_ms = int(jc.window_s * 1000)
    since, holdout_from = _span(settings, now_ms)
    if series is None:
        series = _history(settings, now_ms)
    evidence = Evidence.read(settings) if evidence is None else evidence
    anomalies, false_pos, confirmed = evidence.intervals(window_ms, now_ms)
    sensors = {s: why for s, why in sensors.items() if managed(settings, s)}
    models = {model_name(s, sv.layout, sv.packed_groups) for s in sensors}
    members = sorted(s for s in series if model_name(s, sv.layout, sv.packed_groups) in models and managed(settings, s))
    if not members:
        return []
    train = {s: series[s].between(since, holdout_from) for s in members}
    repo = ModelRepository(sv.model_base_path, sv.model_config_file)
    registered = {e.name: e for e in repo.read_config()}
    champions = {m: repo.served_version(m) for m in models if m in registered}
    for m, v in champions.items():
        if v is not None and registered[m].policy != "specific":
            repo.pin(m, v)
    _push_config(repo, client)
    log.info("lifecycle: retraining %d model(s) of %d sensor(s): %s", len(models), len(members), sensors)
    outcomes = train_fleet(
        train,
        settings,
        labels=anomalies,
        false_positives=false_pos,
        force=True,
        progress=False,
        granularity="sensor",
        register=False,
        priors=False,
    )
    for o in outcomes:
        if o.status == "failed":
            log.error("lifecycle: %s not retrained: %s", o.sensor, o.detail)
    prior = _served_priors(settings, repo, registered)
    past = (ledger or Ledger(settings)).state["verdicts"]
    promoted_at = {(v["model"], v["challenger"]): v["ts"] for v in past if v["promote"]}
    verdicts = []
    for model, version in sorted({(o.model, o.version) for o in outcomes if o.status == "trained"}):
        champ = champions.get(model)
        champion = None
        if champ is not None:
            champion = VersionScorer(model, repo.model_dir(model) / str(champ))
            # a version this lifecycle promoted serves from then on; another, from before the history
            champion.served_from_ms = promoted_at.get((model, champ))
        v = judge(
            model,
            VersionScorer(model, repo.model_dir(model) / str(version)),
            champion,
            {s: series[s] for s in members if s in series},
            holdout_from,
            anomalies,
            confirmed,
            seq_len=jc.seq_len,
            slide=jc.slide,
            window_ms=window_ms,
            far_tolerance=lc.far_tolerance,
            prior=prior,
            learning_windows=jc.incidents.learning_windows,
        )
        served = None
        if v.promote:
            if model not in registered:
                repo.register_many([model])
            repo.pin(model, version)
            _push_config(repo, client)
            if client is not None:
                ok, served = wait_alone(client, model, version, lc.wait_s)
                if not ok:
                    log.error(
                        "lifecycle: %s v%d promoted but not served alone within %g s: %s",
                        model,
                        version,
                        lc.wait_s,
                        served,
                    )
        stage = "stable" if v.promote else "rejected"
        (log.info if v.promote else log.warning)("lifecycle: %s v%d %s: %s", model, version, stage, v.reason)
        record_verdict(settings, model, version, stage, v.metrics())
        rec = {
            **v.to_dict(),
            "stage": stage,
            "served": served,
            "ts": now_ms,
            "why": sorted({sensors[s] for s in sensors if s in members}),
        }
        verdicts.append(rec)
    return verdicts


def cycle_once(settings: Settings, client=None, only: str | None = None, now_ms: int | None = None) -> list[dict]:
    """One pass of the service: the sensors due (or those ``only`` selects, an operator's
    request) retrained and judged, the ledger updated."""
    from sensorwatch.training.data import select

    lc = settings.lifecycle
    now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
    series = _history(settings, now_ms)
    evidence = Evidence.read(settings)
    ledger = Ledger(settings)
    if only:
        todo = dict.fromkeys(select(series, only), "operator request")
    else:
        counts = {s: len(v) for s, v in series.items()}
        latest = {s: int(v.window_end[-1]) for s, v in series.items() if len(v)}
        todo = due(settings, evidence, counts, ledger, now_ms, latest)
    verdicts = run_cycle(settings, todo, now_ms, client, evidence, series, ledger) if todo else []
    if not only and "schedule" in todo.values():
        ledger.state["last_schedule_ms"] = now_ms
    ledger.state.setdefault("new_tried", {}).update(
        {s: len(series[s]) for s, why in todo.items() if why.startswith(NEW_SENSOR) and s in series}
    )
    ledger.state["handled"] += [
        iid
        for iid, r in evidence.incidents.items()
        if r.get("event") == "closed" and int(r.get("windows") or 0) >= lc.lasting_change_windows
    ]
    ledger.state["handled"] += [f"{iid}:{r['label']}" for iid, r in evidence.verdicts.items()]
    ledger.state["handled"] = sorted(set(ledger.state["handled"]))
    ledger.state["verdicts"] += verdicts
    ledger.save()
    return verdicts
