"""SKAB end to end through the product: device models, the real Kafka broker, model server and job.

The offline ``bench/skab.py`` windows SKAB's 8 channels in numpy; this one runs SKAB through
what an operator runs (``../shared/datasets/skab``, its protocol in SOURCE.md):

1. **Stack.** A real Kafka broker (KRaft) on free loopback ports, topics made for records years
   old (``sensorwatch.stack.topics.HISTORICAL``).
2. **Devices.** Each SKAB file is one device (``skab-<folder>-<file>``), its 8 channels its tags.
   The job scores them with device models (``serving.device_models = "skab-*"``): one model per
   device over all 8 tags, the count windows of S device vectors assembled in the JVM.
3. **Training.** Each device's model trains on its file's first 400 rows only, written as a
   readings file and read by ``sensorwatch train``'s code (:func:`~sensorwatch.training.data.from_files`,
   :func:`~sensorwatch.training.trainer.train_fleet` with ``granularity="device"``). The protocol
   fixes, per kind and for every file alike, what ``bench/skab.py`` uses: S, the model widths,
   the normalisation (StandardScaler: ``scale_floor`` 0), the detector (the autoencoder's
   reconstruction error of all channels: ``training.device_errors`` ``reconstruction``) and the
   threshold's quantile and margin (here on the held-out last fifth of the 400 rows, as
   ``sensorwatch train`` calibrates, where the offline bench uses the training windows).
4. **Replay.** Every row of every file, at its own 1 Hz timestamp (the Kafka record time too),
   merged in time order, 8 readings per row, into the readings topic; the job (Flink
   mini-cluster, ``job.window_s`` 1 s: one row per tumbling window) scores every window.
5. **Scoring.** SKAB's protocol, point-wise over the test rows (row 400 on): a point is flagged
   when every window of the job that starts in the S-1 rows before it is an anomaly record;
   F1, FAR and MAR pooled over all files. The incidents the job opened (outside their learning
   period) are scored the same way, the rows from an incident's first to its last anomalous
   window flagged, as a second line.

    .venv/bin/python bench/skab_stream.py [--kinds conv_ae,lstm_ae] [--offline]

It prints the table beside the offline figures (``--offline`` runs ``bench/skab.py``'s code in
the same process) and the published leaderboard, and ends with one JSON line:
``{"<kind>": {"f1": ..., "far": ..., "mar": ...}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from sensorwatch.app import local
from sensorwatch.app.ledger import Ledger
from sensorwatch.app.skab import PROTOCOL, PUBLISHED, TRAIN_ROWS, Confusion, SkabFile, flag_points, load
from sensorwatch.core.config import Settings
from sensorwatch.core.kafka import librdkafka_options
from sensorwatch.core.paths import skab_dir
from sensorwatch.stack import LocalStack
from sensorwatch.stack.kafka_broker import free_port
from sensorwatch.stack.topics import HISTORICAL


def bench_settings(work: Path, kind: str, epochs: int, seed: int) -> Settings:
    """The defaults, on the bench's own ports and folders, with SKAB's protocol for ``kind``."""
    p = PROTOCOL[kind]
    s = Settings()
    s.stack.work_dir = work
    s.stack.kafka_port = s.stack.controller_port = 0
    port = free_port()
    s.serving.port, s.serving.target = port, f"127.0.0.1:{port}"
    s.serving.model_base_path = work / f"models-{kind}"
    s.serving.poll_wait_s = 0.5
    s.serving.device_models = "skab-*"
    s.job.window_s = 1.0  # SKAB's rows are 1 s apart: one row per tumbling window
    s.job.seq_len = p["seq_len"]
    s.job.start_from = "earliest"
    s.job.emit_scores = True  # every window gets a record: completeness, and the flags per window
    t = s.training
    t.kind, t.epochs, t.seed, t.batch_size, t.scale_floor, t.min_windows, t.plots = (
        kind,
        epochs,
        seed,
        32,
        0.0,
        1,
        False,
    )
    for k in ("hidden", "latent", "kernel_size"):
        if k in p:
            setattr(t, k, p[k])
    # the protocol's detector: an autoencoder scored by its reconstruction error of all channels
    # at once, not the relations mode (each tag from the others) that pump models default to
    t.device_errors = "reconstruction"
    t.workers = 1  # the 34 models as one stack, as bench/skab.py trains them
    t.threshold_quantile = p["quantile"]
    # the protocol's margin is on a mean absolute residual; ours is a mean squared one (the SVM's is signed)
    t.threshold_margin = p["margin"] ** 2 if kind != "ocsvm" else p["margin"]
    return s


def train(s: Settings, files: list[SkabFile], work: Path) -> dict:
    """Each device's model on its file's first 400 rows, through ``sensorwatch train``'s code."""
    import pandas as pd

    from sensorwatch.training.data import from_files
    from sensorwatch.training.trainer import summary, train_fleet

    paths = []
    for f in files:
        rows = [
            pd.DataFrame({"device": f.device, "tag": tag, "ts": f.ts[:TRAIN_ROWS], "value": f.x[:TRAIN_ROWS, c]})
            for c, tag in enumerate(f.tags)
        ]
        path = work / "train" / f"{f.device}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.concat(rows).to_csv(path, index=False)
        paths.append(path)
    series = from_files(paths, int(s.job.window_s * 1000))
    return summary(train_fleet(series, s, progress=False, granularity="device"))


def replay(s: Settings, files: list[SkabFile]) -> int:
    """Every row's 8 readings, all files merged in time order, the record time the row's own."""
    from confluent_kafka import Producer

    ts = np.concatenate([f.ts for f in files])
    who = np.concatenate([np.full(len(f.ts), k) for k, f in enumerate(files)])
    row = np.concatenate([np.arange(len(f.ts)) for f in files])
    order = np.argsort(ts, kind="stable")
    prod = Producer(librdkafka_options(s.kafka, "producer"))
    failures: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    topic, sent = s.kafka.topics.readings, 0
    for i in order.tolist():
        f = files[who[i]]
        t = int(ts[i])
        key = f.device.encode()
        for c, tag in enumerate(f.tags):
            payload = json.dumps({"device": f.device, "tag": tag, "ts": t, "value": float(f.x[row[i], c])}).encode()
            while True:
                try:
                    prod.produce(topic, payload, key, timestamp=t, on_delivery=on_delivery)
                    break
                except BufferError:
                    prod.poll(0.05)
            sent += 1
    remaining = prod.flush(120)
    if remaining or failures:
        raise RuntimeError(f"replay: {remaining} readings unacknowledged, {len(failures)} failed: {failures[:1]}")
    return sent


def score(
    files: list[SkabFile], records: dict[str, dict], incidents: list[dict], S: int
) -> tuple[dict, dict, list[str]]:
    """(metrics of the anomaly records, metrics of the incidents, keys of windows without a record)."""
    windows, alerts = Confusion(), Confusion()
    missing: list[str] = []
    opened = {r["incident_id"]: r for r in incidents if r["event"] == "opened" and not r["learning"]}
    closed = {r["incident_id"]: r for r in incidents if r["event"] == "closed"}
    for f in files:
        n = len(f.ts) - TRAIN_ROWS
        flags = np.zeros(max(0, n - S + 1), bool)  # the test windows: rows k .. k+S-1, k from row 400
        for k in range(len(flags)):
            end = int(f.ts[TRAIN_ROWS + k + S - 1]) + 1000
            rec = records.get(f"{f.device}@{end}")
            if rec is None or rec.get("status") != "scored":
                missing.append(f"{f.device}@{end}")
                continue
            flags[k] = bool(rec["is_anomaly"])
        y = f.y[TRAIN_ROWS:]
        windows.add(flag_points(flags, n, S), y)
        pts = np.zeros(len(f.ts), bool)
        for iid, r in opened.items():
            if r["sensor"] != f.device:
                continue
            last = closed[iid]["end"] if iid in closed else int(f.ts[-1]) + 1000
            pts |= (f.ts >= r["start"] - 1000) & (f.ts < last)
        alerts.add(pts[TRAIN_ROWS:], y)
    return windows.metrics(), alerts.metrics(), missing


def run_kind(kind: str, files: list[SkabFile], args, stack_work: Path) -> dict:
    t0 = time.time()
    s = bench_settings(stack_work, kind, args.epochs, args.seed)
    stack = LocalStack(s)
    server = job = None
    ledger = None
    try:
        stack.up()
        s = local.fresh_topics(s, f"skab-{kind}", HISTORICAL)
        t = time.time()
        trained = train(s, files, stack_work / kind)
        t_train = time.time() - t
        print(
            f"{kind}: trained {trained['trained']} device models, {trained['failed']} failed, {t_train:.0f} s",
            flush=True,
        )
        server = local.ModelServerProcess(s, stack_work / f"model-server-{kind}.log").start()
        from sensorwatch.jobs.pipeline import run

        job = run(s, detached=True)
        t = time.time()
        readings = replay(s, files)
        local.flush_watermark(s, int(max(f.ts[-1] for f in files)) + 4 * 1000 * s.job.seq_len)
        ledger = Ledger(s)
        ledger.read_inputs(readings, timeout_s=args.timeout_s)
        ledger.read_outputs(timeout_s=args.timeout_s, quiet_s=300)  # a loaded machine stalls output for a minute
        incidents = ledger.read_incidents(timeout_s=120, quiet_s=10)
        t_stream = time.time() - t
    finally:
        if job is not None:
            job.cancel()
        if server is not None:
            server.stop()
        stack.down()
    records = ledger.scored()
    win, inc, missing = score(files, records, incidents, s.job.seq_len)
    print(
        f"{kind}: {readings:,} readings streamed and accounted for {ledger.readings_accounted():,} "
        f"({len(ledger.late):,} late, {len(ledger.dead):,} dead letters), {len(records):,} windows scored, "
        f"{len(missing)} test windows without a record (e.g. {missing[:3]}), in {t_stream:.0f} s",
        flush=True,
    )
    return {
        **win,
        "incidents": inc,
        "trained": trained["trained"],
        "failed": trained["failed"],
        "windows_without_record": len(missing),
        "late_readings": len(ledger.late),
        "readings": readings,
        "train_s": round(t_train, 1),
        "stream_s": round(t_stream, 1),
        "seconds": round(time.time() - t0, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", default="conv_ae", help="comma-separated; each kind is one run of the stack (~15 min)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--offline", action="store_true", help="also run bench/skab.py's offline protocol, same kinds")
    ap.add_argument("--timeout-s", type=float, default=3600.0)
    args = ap.parse_args()
    files = load(skab_dir())
    work = Path(tempfile.mkdtemp(prefix="sensorwatch-skab-"))
    results, offline = {}, {}
    try:
        for kind in args.kinds.split(","):
            results[kind] = run_kind(kind, files, args, work)
            if args.offline:
                sys.path.insert(0, str(Path(__file__).resolve().parent))
                import skab as offline_bench

                data = [(f.name, f.x, f.y) for f in files]
                offline[kind] = offline_bench.run_kind(kind, data, args.epochs, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nSKAB through the stream ({len(files)} devices x 8 tags, device models), point-wise over test rows")
    print(f"{'':<24}{'F1':>7}{'FAR %':>8}{'MAR %':>8}")
    for kind, r in results.items():
        print(f"{'stream ' + kind:<24}{r['f1']:>7.3f}{r['far']:>8.2f}{r['mar']:>8.2f}")
        i = r["incidents"]
        print(f"{'  incidents':<24}{i['f1']:>7.3f}{i['far']:>8.2f}{i['mar']:>8.2f}")
        if kind in offline:
            o = offline[kind]
            print(f"{'offline ' + kind:<24}{o['f1']:>7.3f}{o['far']:>8.2f}{o['mar']:>8.2f}")
    for name, (f1, far, mar) in PUBLISHED.items():
        print(f"{'published ' + name:<24}{f1:>7.2f}{far:>8.2f}{mar:>8.2f}")
    print(json.dumps({k: {**v, **({"offline": offline[k]} if k in offline else {})} for k, v in results.items()}))
    return 0 if all(r["windows_without_record"] == 0 and r["failed"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
