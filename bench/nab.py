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

No setting is chosen per series or from labels. ``--series N``, ``--every K`` or ``--names``
replay a part (the test suite's slice). The JSON line's ``reference_mismatches`` counts
incidents on which the job and the reference rules, run over the job's own raw scores,
disagree (each model version's records from that version's seed).

**With the lifecycle on** (``--lifecycle``), causal: the replay goes in steps of ``--step-s``
of event time (a day). After each step every partition's watermark is moved to the step's end,
the job's output is read until it has caught up, and one pass of ``sensorwatch lifecycle``
runs at the step's end: it trains only on the aggregates, incidents and labels the job has
written so far, and what it promotes scores the next step. Its settings are the defaults kept
in windows (:func:`lifecycle_settings`); no partition goes idle between steps. Beside it, a child process replays the same series
with the same trained models and no lifecycle (its own broker, server and job), so one run
prints both figures; the JSON line holds the lifecycle's, the twin's under ``static``, and
``standard_gain``.

    .venv/bin/python bench/nab.py [--corpus DIR] [--out DIR] [--series N | --every K] [--lifecycle]
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sensorwatch.app import local
from sensorwatch.app.ledger import Ledger
from sensorwatch.app.nab import Corpus, Series, print_table, result, sensor_of, write_results
from sensorwatch.core.config import Settings
from sensorwatch.core.incidents import reference_steps
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


def _rows(series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[str]]]:
    """Every row of every series in timestamp order: (ts, value, series index, [device, tag] per series)."""
    ts = np.concatenate([x.ts for x in series])
    val = np.concatenate([x.values for x in series])
    who = np.concatenate([np.full(len(x.ts), k) for k, x in enumerate(series)])
    order = np.argsort(ts, kind="stable")
    return ts[order], val[order], who[order], [sensor_of(x.name).split("/") for x in series]


def _produce(s: Settings, ts: np.ndarray, val: np.ndarray, who: np.ndarray, devices: list[list[str]]) -> int:
    """These rows as readings, the record time each row's own; returns the count."""
    from confluent_kafka import Producer

    prod = Producer(librdkafka_options(s.kafka, "producer"))
    failures: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    topic = s.kafka.topics.readings
    for t_ms, v, k in zip(ts.tolist(), val.tolist(), who.tolist()):
        device, tag = devices[k]
        payload = json.dumps({"device": device, "tag": tag, "ts": int(t_ms), "value": float(v)})
        while True:
            try:
                prod.produce(topic, payload.encode(), device.encode(), timestamp=int(t_ms), on_delivery=on_delivery)
                break
            except BufferError:
                prod.poll(0.05)
    remaining = prod.flush(120)
    if remaining or failures:
        raise RuntimeError(f"replay: {remaining} readings unacknowledged, {len(failures)} failed: {failures[:1]}")
    return int(ts.size)


def replay(s: Settings, series: list[Series]) -> int:
    """Every row as a reading, in timestamp order, the record time its own; returns the count."""
    return _produce(s, *_rows(series))


def lifecycle_settings(s: Settings, work: Path) -> Settings:
    """``s`` with the lifecycle's defaults kept in *windows*: its event-time settings are sized
    for the default window (5 s), NAB's is 300 s, so each is scaled by the ratio (60): the
    schedule every 720 windows (60 h), 17,280 windows of history (60 days), a hold-out of 360
    windows (30 h). Its window counts (a lasting change, a new sensor) stay as they are. The
    replay's watermark flushes are not a sensor to train (``lifecycle.exclude``)."""
    s = s.model_copy(deep=True)
    default = Settings()
    scale = s.job.window_s / default.job.window_s
    lc, d = s.lifecycle, default.lifecycle
    lc.interval_s, lc.history_s, lc.holdout_s = d.interval_s * scale, d.history_s * scale, d.holdout_s * scale
    lc.exclude = "watermark/*"
    lc.state_dir = work / "lifecycle"
    # no idle partitions: every partition idles while a lifecycle pass runs, and the first to
    # read the next step would move the watermark past the others' rows (late). Each step's
    # flush gives every partition a record, so the watermark moves once per step, for all
    s.job.idle_timeout_ms = 0
    return s


def replay_in_steps(s: Settings, series: list[Series], step_ms: int, timeout_s: float) -> tuple[int, Ledger, list]:
    """The replay with the lifecycle on, causal: the rows go in steps of ``step_ms`` of event
    time; after each, every partition's watermark is moved to the step's end (one flush
    reading each), the job's output is read until it has caught up (every reading accounted
    for, every window owed scored), and one lifecycle pass runs at the step's end
    (:func:`~sensorwatch.training.lifecycle.cycle_once`): it reads the aggregates, incidents
    and labels the job wrote so far, and what it promotes scores the next step on.
    Returns (readings sent, the ledger, every verdict)."""
    from sensorwatch.serving.client import ScoringClient
    from sensorwatch.training.lifecycle import cycle_once

    ts, val, who, devices = _rows(series)
    step = ts // step_ms
    cuts = np.flatnonzero(np.diff(step)) + 1
    ooo = s.job.out_of_orderness_ms
    ledger, client = Ledger(s), ScoringClient(s.serving)
    sent, verdicts, t0 = 0, [], time.time()
    try:
        for k, (lo, hi) in enumerate(zip([0, *cuts.tolist()], [*cuts.tolist(), len(ts)])):
            sent += _produce(s, ts[lo:hi], val[lo:hi], who[lo:hi], devices)
            end = int(step[lo] + 1) * step_ms
            # every partition's watermark to end - 1: the step's last windows close, and a row at
            # the next step's first instant is not at or before the watermark (late). The flush
            # readings lie in the window after the step: they are aggregated a step later
            flushed = local.flush_watermark(s, end + ooo - 1)
            ledger.catch_up(sent, timeout_s)
            sent += flushed
            for v in cycle_once(s, client, now_ms=end):
                verdicts.append(v)
                print(
                    f"  step {k + 1}: {v['model']} v{v['challenger']} {v['stage']} ({'; '.join(v['why'])}): "
                    f"{v['reason']}",
                    flush=True,
                )
            if (k + 1) % 20 == 0:
                print(f"  step {k + 1} of {len(cuts) + 1}: {hi:,} rows in {time.time() - t0:.0f} s", flush=True)
    finally:
        client.close()
    return sent, ledger, verdicts


def detections(s: Settings, series: list[Series], incidents: list[dict], scored: dict[str, dict]):
    """(alerts as emitted, calibrated score per row, counts) per series.

    The calibrated score comes from the reference rules run over the job's own raw scores
    (each version's records from that version's seed); ``counts["reference_mismatches"]``
    counts the incidents where the job and the reference disagree (opened by one and not the
    other, or learning in one only): 0 when they agree."""
    seeds = incident_seeds(s.serving.model_base_path, by_version=True)
    window_ms = int(s.job.window_s * 1000)
    opened = {r["incident_id"]: r for r in incidents if r["event"] == "opened"}
    counts = {
        "incidents": sum(not r["learning"] for r in opened.values()),
        "learning_incidents": sum(r["learning"] for r in opened.values()),
        "incident_records": len({(r["incident_id"], r["event"]) for r in incidents}),
        "reference_mismatches": 0,
    }
    of_sensor = {sensor_of(x.name): x for x in series}
    cal = {x.name: np.zeros(len(x.ts)) for x in series}
    reference: dict[str, set] = {}
    for sensor, r, tracker, events in reference_steps(s.job.incidents, window_ms, scored.values(), seeds):
        x = of_sensor.get(sensor)
        if x is None:
            continue
        reference.setdefault(sensor, set()).update((e.start, e.learning) for e in events if e.event == "opened")
        row = int(np.searchsorted(x.ts, r["window_end"], side="right")) - 1
        if row >= 0:
            cal[x.name][row] = max(cal[x.name][row], tracker.last_severity / 100.0)
    det = {}
    for sensor, x in of_sensor.items():
        d = np.zeros(len(x.ts), bool)
        emitted = set()
        for r in opened.values():
            if r["sensor"] == sensor:
                emitted.add((r["start"], r["learning"]))
                row = int(np.searchsorted(x.ts, r["start"], side="right")) - 1
                if row >= 0 and not r["learning"]:
                    d[row] = True
        ref = reference.get(sensor, set())
        counts["reference_mismatches"] += len(ref ^ emitted)
        if ref ^ emitted:
            print(f"  {sensor}: job only {sorted(emitted - ref)[:3]}, reference only {sorted(ref - emitted)[:3]}")
        det[x.name] = d
    return det, cal, counts


def serve_in_place(models: Path, s: Settings) -> None:
    """Serve the trained repository ``models`` as ``s``'s (the twin's copy of the parent's),
    registered afresh: the parent's models.config is left out of the copy."""
    from sensorwatch.serving.repository import ModelRepository

    s.serving.model_base_path = models
    ModelRepository(models, s.serving.model_config_file).register_many(
        sorted(d.name for d in models.iterdir() if d.is_dir())
    )


def _select(args, corpus: Corpus) -> list[str]:
    names = args.names or corpus.names()
    if args.every:
        names = names[:: args.every]
    return names[: args.series] if args.series else names


def _child_argv(args, models: Path, json_out: Path) -> list[str]:
    """The static twin of a ``--lifecycle`` run: the same series, the same trained models."""
    argv = [sys.executable, __file__, "--models", str(models), "--json-out", str(json_out)]
    argv += ["--timeout-s", str(args.timeout_s)]
    if args.corpus:
        argv += ["--corpus", str(args.corpus)]
    if args.names:
        argv += ["--names", *args.names]
    if args.every:
        argv += ["--every", str(args.every)]
    if args.series:
        argv += ["--series", str(args.series)]
    return argv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None, help="NAB layout; default ../shared/datasets/nab-dev")
    ap.add_argument("--out", type=Path, default=None, help="write NAB results files here")
    ap.add_argument("--series", type=int, default=None, help="replay only the first N series")
    ap.add_argument("--every", type=int, default=None, help="replay every K-th series (a slice across categories)")
    ap.add_argument("--names", nargs="+", default=None, help="replay only these series (<category>/<file>.csv)")
    ap.add_argument("--timeout-s", type=float, default=3600.0, help="longest wait for the job's output")
    ap.add_argument(
        "--lifecycle",
        action="store_true",
        help="replay in steps with the lifecycle on, and the same models without it beside it: both figures",
    )
    ap.add_argument("--step-s", type=float, default=86400.0, help="event time between lifecycle passes")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, models, ledger)")
    ap.add_argument("--models", type=Path, default=None, help=argparse.SUPPRESS)  # serve these, do not train
    ap.add_argument("--json-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    t0 = time.time()
    corpus = Corpus(args.corpus or shared_dir() / "datasets" / "nab-dev")
    series = [corpus.series(n) for n in _select(args, corpus)]
    work = Path(tempfile.mkdtemp(prefix="sensorwatch-nab-"))
    s = bench_settings(work)
    if args.lifecycle:
        s = lifecycle_settings(s, work)
    stack = LocalStack(s)
    server = job = twin = None
    verdicts: list = []
    trained = {"trained": len(series), "failed": 0, "failures": []}
    try:
        stack.up()
        s = local.fresh_topics(s, "nab", HISTORICAL)
        if args.models:
            serve_in_place(args.models, s)
        else:
            t_train = time.time()
            trained = train(s, series)
            print(
                f"trained {trained['trained']}, failed {trained['failed']} in {time.time() - t_train:.0f} s", flush=True
            )
            for f in trained["failures"]:
                print(f"  refused: {f['sensor']}: {f['detail']}", flush=True)
        if args.lifecycle:
            shutil.copytree(
                s.serving.model_base_path, work / "static-models", ignore=shutil.ignore_patterns("*.config")
            )
            twin_log = (work / "static.log").open("w")
            twin = subprocess.Popen(
                _child_argv(args, work / "static-models", work / "static.json"),
                stdout=twin_log,
                stderr=subprocess.STDOUT,
            )
        server = local.ModelServerProcess(s, work / "model-server.log").start()
        from sensorwatch.jobs.pipeline import run

        job = run(s, detached=True)
        t_replay = time.time()
        readings = sum(len(x.ts) for x in series)
        top = int(max(x.ts[-1] for x in series))
        last = top + 4 * int(WINDOW_S * 1000)
        if args.lifecycle:
            # past the window of the last step's flush readings, or that window never closes
            step_ms = int(args.step_s * 1000)
            last = max(last, (top // step_ms + 1) * step_ms + 2 * int(WINDOW_S * 1000) + s.job.out_of_orderness_ms)
            sent, ledger, verdicts = replay_in_steps(s, series, step_ms, args.timeout_s)
            local.flush_watermark(s, last)  # its own readings open a window that never closes
            ledger.catch_up(sent, args.timeout_s, quiet_s=10)
            ledger.close()
            incidents = ledger.incidents
        else:
            replay(s, series)
            local.flush_watermark(s, last)
            ledger = Ledger(s)
            ledger.read_inputs(readings, timeout_s=args.timeout_s)
            ledger.read_outputs(timeout_s=args.timeout_s, quiet_s=120)
            incidents = ledger.read_incidents(timeout_s=120, quiet_s=10)
        t_replay = time.time() - t_replay
        missing = ledger.missing()
        kinds = collections.Counter(
            r.get("status", r["_topic"].split(".")[1]) for recs in ledger.outputs.values() for r in recs
        )
        print(
            f"replayed {readings:,} rows of {len(series)} series in {t_replay:.0f} s: "
            f"{ledger.readings_accounted():,} accounted for ({len(ledger.late)} late, {len(ledger.dead)} "
            f"dead-lettered), {len(ledger.scored()):,} windows scored, {len(missing)} without a record "
            f"(records: {dict(kinds)}), {len(incidents)} incident records",
            flush=True,
        )
    finally:
        if twin is not None and sys.exc_info()[0] is not None:
            twin.terminate()  # this run failed: its twin's figures would stand alone
        if job is not None:
            job.cancel()
        if server is not None:
            server.stop()
        stack.down()
    det, cal, counts = detections(s, series, incidents, ledger.scored())
    if args.out:
        write_results(args.out, series, det, cal)
    if args.lifecycle:
        print("with the lifecycle on:")
    total = print_table(series, det, corpus.profiles)
    figures = result(
        total,
        incidents=counts["incidents"],
        learning_incidents=counts["learning_incidents"],
        incident_records=counts["incident_records"],
        reference_mismatches=counts["reference_mismatches"],
        refused_models=trained["failed"],
        windows_without_record=len(missing),
        late_readings=len(ledger.late),
        readings=readings,
    )
    ok = not missing and ledger.readings_accounted() >= readings
    if args.lifecycle:
        figures |= {
            "step_s": args.step_s,
            "promoted": sum(v["stage"] == "stable" for v in verdicts),
            "rejected": sum(v["stage"] == "rejected" for v in verdicts),
        }
        rc = twin.wait()
        twin_log.close()
        print("the same models, no lifecycle (the static twin, run beside it):")
        print((work / "static.log").read_text(), end="")
        static = json.loads((work / "static.json").read_text()) if rc == 0 else None
        ok = ok and static is not None
        figures |= {
            "static": static,
            "standard_gain": None if static is None else round(figures["standard"] - static["standard"], 2),
        }
    figures["seconds"] = round(time.time() - t0, 1)
    if args.json_out:
        args.json_out.write_text(json.dumps(figures))
    if args.keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
