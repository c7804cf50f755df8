"""NAB through the product: a real-data replay through the Kafka broker, the model server and the job.

For a corpus in NAB's layout (``data/<category>/<name>.csv``, ``labels/combined_windows.json``;
by default ``../shared/datasets/nab-dev``), with the configuration's defaults throughout:

1. **Stack.** A real Kafka broker (KRaft) on free loopback ports, its topics made for records
   years old (no time-based deletion: ``sensorwatch.stack.topics.HISTORICAL``).
2. **Training.** Each series is one sensor (device ``<category>.<name>``, tag ``value``). Its
   model trains only on NAB's probationary rows, ``min(floor(0.15 N), 750)``, aggregated into
   the job's tumbling windows (300 s: NAB's rows are 5 minutes), through the same code as
   ``sensorwatch train`` (:func:`sensorwatch.training.trainer.train_fleet`), into a model
   repository that the model server (TF Serving's gRPC API) serves.
3. **Replay.** Every row of every series, merged in timestamp order, goes to the readings
   topic as a reading ``{device, tag, ts, value}``; its event time is the row's own timestamp,
   and the Kafka record time is the same, so the contract's ts bounds hold. The job (Flink
   mini-cluster) reads it from the earliest offset.
4. **Collection.** Once every row is accounted for (aggregated, late or dead-lettered) and
   every count window has its score record (:class:`~sensorwatch.app.ledger.Ledger`), the
   incidents topic is read to its end.
5. **Output.** ``--out DIR`` writes NAB results files for ``sensorwatch`` (1 at the last row at
   or before the end of the window where a non-learning incident opened: the alerts as
   emitted) and ``sensorwatchScore`` (the calibrated score: the reference calibration of
   :mod:`sensorwatch.core.incidents` over the job's own raw scores, from each model's seed,
   as severity / 100).
6. **Scoring.** The project's NAB scorer (:mod:`sensorwatch.app.nab`), per category and in
   total; the last line is one JSON object.

No setting is chosen per series or from labels. ``--series N`` or ``--names`` replay a part
(the test suite's slice). The JSON line's ``reference_mismatches`` counts incidents on which the
job and the reference rules, run over the job's own raw scores, disagree.

    .venv/bin/python bench/nab.py [--corpus DIR] [--out DIR] [--series N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sensorwatch.app import local
from sensorwatch.app.ledger import Ledger
from sensorwatch.app.nab import Corpus, Series, print_table, result, sensor_of, write_results
from sensorwatch.core.config import Settings
from sensorwatch.core.incidents import IncidentRules, IncidentTracker
from sensorwatch.core.kafka import librdkafka_options
from sensorwatch.core.paths import shared_dir
from sensorwatch.core.windows import aggregate_readings
from sensorwatch.serving.repository import incident_seeds
from sensorwatch.stack import LocalStack
from sensorwatch.stack.kafka_broker import free_port
from sensorwatch.stack.topics import HISTORICAL

WINDOW_S = 300.0  # NAB's rows are 5 minutes apart


def bench_settings(work: Path) -> Settings:
    """The defaults, on the bench's own broker, model repository and ports."""
    s = Settings()
    s.stack.work_dir = work
    s.stack.kafka_port = s.stack.controller_port = 0
    port = free_port()
    s.serving.port, s.serving.target = port, f"127.0.0.1:{port}"
    s.serving.model_base_path = work / "models"
    s.serving.poll_wait_s = 0.5
    s.job.window_s = WINDOW_S
    s.job.start_from = "earliest"
    s.job.emit_scores = True  # every window gets a record: completeness, and the raw scores
    return s


def train(s: Settings, series: list[Series]) -> dict:
    """Each series' model on its probationary rows, through ``sensorwatch train``'s code."""
    from sensorwatch.training.trainer import summary, train_fleet

    window_ms = int(s.job.window_s * 1000)
    history = {}
    for x in series:
        sensor = sensor_of(x.name)
        (whole,) = aggregate_readings(np.full(len(x.ts), sensor), x.ts, x.values, window_ms).values()
        last = int(x.ts[x.probation - 1]) // window_ms * window_ms + window_ms
        history[sensor] = whole.between(None, last + 1)
    return summary(train_fleet(history, s, progress=False, plots=False))


def replay(s: Settings, series: list[Series]) -> int:
    """Every row as a reading, in timestamp order, the record time its own; returns the count."""
    from confluent_kafka import Producer

    ts = np.concatenate([x.ts for x in series])
    val = np.concatenate([x.values for x in series])
    who = np.concatenate([np.full(len(x.ts), k) for k, x in enumerate(series)])
    order = np.argsort(ts, kind="stable")
    devices = [sensor_of(x.name).split("/") for x in series]
    prod = Producer(librdkafka_options(s.kafka, "producer"))
    failures: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    topic = s.kafka.topics.readings
    for i in order.tolist():
        device, tag = devices[who[i]]
        payload = json.dumps({"device": device, "tag": tag, "ts": int(ts[i]), "value": float(val[i])})
        while True:
            try:
                prod.produce(topic, payload.encode(), device.encode(), timestamp=int(ts[i]), on_delivery=on_delivery)
                break
            except BufferError:
                prod.poll(0.05)
    remaining = prod.flush(120)
    if remaining or failures:
        raise RuntimeError(f"replay: {remaining} readings unacknowledged, {len(failures)} failed: {failures[:1]}")
    return int(ts.size)


def detections(s: Settings, series: list[Series], incidents: list[dict], scored: dict[str, dict]):
    """(alerts as emitted, calibrated score per row, counts) per series.

    The calibrated score comes from the reference rules run over the job's own raw scores;
    ``counts["reference_mismatches"]`` counts the incidents where the job and the reference
    disagree (opened by one and not the other, or learning in one only): 0 when they agree."""
    by_sensor: dict[str, list[dict]] = {}
    for r in scored.values():
        if r.get("status", "scored") == "scored":
            by_sensor.setdefault(r["sensor"], []).append(r)
    seed = incident_seeds(s.serving.model_base_path)
    rules: IncidentRules = s.job.incidents
    det, cal = {}, {}
    opened = {r["incident_id"]: r for r in incidents if r["event"] == "opened"}
    counts = {
        "incidents": sum(not r["learning"] for r in opened.values()),
        "learning_incidents": sum(r["learning"] for r in opened.values()),
        "incident_records": len({(r["incident_id"], r["event"]) for r in incidents}),
    }
    for x in series:
        sensor = sensor_of(x.name)
        d = np.zeros(len(x.ts), bool)
        for r in opened.values():
            if r["sensor"] == sensor and not r["learning"]:
                row = int(np.searchsorted(x.ts, r["start"], side="right")) - 1
                if row >= 0:
                    d[row] = True
        c = np.zeros(len(x.ts))
        tracker = IncidentTracker(rules, int(s.job.window_s * 1000))
        reference = set()
        for r in sorted(by_sensor.get(sensor, []), key=lambda r: r["window_end"]):
            events = tracker.step(
                r["window_end"],
                float(r["score"]),
                float(r["threshold"]),
                version=r["model_version"],
                seed=seed.get(sensor),
            )
            reference |= {(e.start, e.learning) for e in events if e.event == "opened"}
            row = int(np.searchsorted(x.ts, r["window_end"], side="right")) - 1
            if row >= 0:
                c[row] = max(c[row], tracker.last_severity / 100.0)
        emitted = {(r["start"], r["learning"]) for r in opened.values() if r["sensor"] == sensor}
        counts["reference_mismatches"] = counts.get("reference_mismatches", 0) + len(reference ^ emitted)
        if reference ^ emitted:
            print(
                f"  {sensor}: job only {sorted(emitted - reference)[:3]}, reference only {sorted(reference - emitted)[:3]}",
                flush=True,
            )
        det[x.name], cal[x.name] = d, c
    return det, cal, counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None, help="NAB layout; default ../shared/datasets/nab-dev")
    ap.add_argument("--out", type=Path, default=None, help="write NAB results files here")
    ap.add_argument("--series", type=int, default=None, help="replay only the first N series")
    ap.add_argument("--names", nargs="+", default=None, help="replay only these series (<category>/<file>.csv)")
    ap.add_argument("--timeout-s", type=float, default=3600.0, help="longest wait for the job's output")
    args = ap.parse_args()
    t0 = time.time()
    corpus = Corpus(args.corpus or shared_dir() / "datasets" / "nab-dev")
    names = args.names or (corpus.names()[: args.series] if args.series else corpus.names())
    series = [corpus.series(n) for n in names]
    work = Path(tempfile.mkdtemp(prefix="sensorwatch-nab-"))
    s = bench_settings(work)
    stack = LocalStack(s)
    server = job = None
    try:
        stack.up()
        s = local.fresh_topics(s, "nab", HISTORICAL)
        t_train = time.time()
        trained = train(s, series)
        t_train = time.time() - t_train
        print(f"trained {trained['trained']}, failed {trained['failed']} in {t_train:.0f} s", flush=True)
        for f in trained["failures"]:
            print(f"  refused: {f['sensor']}: {f['detail']}", flush=True)
        server = local.ModelServerProcess(s, work / "model-server.log").start()
        from sensorwatch.jobs.pipeline import run

        job = run(s, detached=True)
        t_replay = time.time()
        readings = replay(s, series)
        local.flush_watermark(s, int(max(x.ts[-1] for x in series)) + 4 * int(WINDOW_S * 1000))
        ledger = Ledger(s)
        ledger.read_inputs(readings, timeout_s=args.timeout_s)
        ledger.read_outputs(timeout_s=args.timeout_s, quiet_s=120)
        incidents = ledger.read_incidents(timeout_s=120, quiet_s=10)
        t_replay = time.time() - t_replay
        missing = ledger.missing()
        print(
            f"replayed {readings:,} rows of {len(series)} series in {t_replay:.0f} s: "
            f"{ledger.readings_accounted():,} accounted for, {len(ledger.scored()):,} windows scored, "
            f"{len(missing)} without a record, {len(incidents)} incident records",
            flush=True,
        )
    finally:
        if job is not None:
            job.cancel()
        if server is not None:
            server.stop()
        stack.down()
    det, cal, counts = detections(s, series, incidents, ledger.scored())
    if args.out:
        write_results(args.out, series, det, cal)
    total = print_table(series, det, corpus.profiles)
    shutil.rmtree(work, ignore_errors=True)
    figures = result(
        total,
        incidents=counts["incidents"],
        learning_incidents=counts["learning_incidents"],
        incident_records=counts["incident_records"],
        reference_mismatches=counts.get("reference_mismatches", 0),
        refused_models=trained["failed"],
        windows_without_record=len(missing),
        readings=readings,
        seconds=round(time.time() - t0, 1),
    )
    print(json.dumps(figures))
    return 0 if not missing and ledger.readings_accounted() >= readings else 1


if __name__ == "__main__":
    sys.exit(main())
