"""The job's scoring hot path, stage by stage: the Python scorer and the JVM's record builder.

1,002 sensors of the simulated fleet, packed models trained on an hour of clean history,
served by the real model server in its own process. Count windows of the clean stretch that
follows are packed as the job packs them (one batch per shard and window end, about 125
windows) and then:

1. **Python scorer** (:class:`~sensorwatch.udfs.scoring.BatchScorer`, the job's Python half,
   one gRPC channel): windows/s with anomaly records only (the default) and with every score
   published (``job.emit_scores``), and the share of its time spent waiting for Predict.
2. **JVM record builder** (``explode_records``, Java, in a Flink table environment): records/s
   for the same batches' every window, as the every-score configuration builds them (the time
   of the same query without the builder subtracted: reading the rows in from Python).

Both in one run, side by side; what a window costs in Python against what its record costs in
the JVM is the case for the JVM-side explode.

    .venv/bin/python bench/scorer.py [--devices 334 --rounds 40]

Ends with one JSON line: {"python_windows_per_s", "python_all_scores_windows_per_s",
"predict_wait_share", "jvm_records_per_s", ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# This file is bench/scorer.py: as a script its folder comes first on sys.path; keep the package first.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)


def batches(s, fleet, rounds: int) -> list[bytes]:
    """``rounds`` window ends of every shard's count windows, packed as the job packs them."""
    from sensorwatch.app.local import history_config
    from sensorwatch.core.windows import model_name
    from sensorwatch.simulate.history import fleet_history
    from sensorwatch.udfs.batch import WindowBatch, encode

    S = s.job.seq_len
    w_ms = int(s.job.window_s * 1000)
    hours = (rounds + S + 2) * s.job.window_s / 3600
    series, _ = fleet_history(history_config(s.simulator, fleet.start_ms, hours), w_ms, 0.002)
    shards: dict[str, list[str]] = {}
    for sensor in sorted(series):
        shards.setdefault(model_name(sensor, "packed", s.serving.packed_groups), []).append(sensor)
    feats = {k: v.features() for k, v in series.items()}
    ends = {k: v.window_end for k, v in series.items()}
    out = []
    for r in range(rounds):
        for names in shards.values():
            names = [x for x in names if len(feats[x]) >= r + S]
            f = np.stack([feats[x][r : r + S] for x in names])
            end = np.array([ends[x][r + S - 1] for x in names], np.int64)
            out.append(encode(WindowBatch(names, end - S * w_ms, end, end + 50, f)))
    return out


def python_rate(s, data: list[bytes], emit_scores: bool) -> dict:
    from sensorwatch.udfs.batch import decode
    from sensorwatch.udfs.scoring import BatchScorer

    c = s.model_copy(deep=True)
    c.job.emit_scores = emit_scores
    scorer = BatchScorer(c)
    try:
        for b in data[:16]:
            scorer.score(decode(b))  # warm-up: channels, the server's first calls
        run = scorer._run
        waited = 0.0

        def timed(calls, batch):
            nonlocal waited
            t = time.perf_counter()
            try:
                return run(calls, batch)
            finally:
                waited += time.perf_counter() - t

        scorer._run = timed  # the Predict round trips (submit, wait, parse), measured in place
        n = sum(len(decode(b)) for b in data)
        rows, t0 = 0, time.perf_counter()
        for b in data:
            rows += len(scorer.score(decode(b)))
        dt = time.perf_counter() - t0
    finally:
        scorer.close()
    return {
        "windows_per_s": round(n / dt),
        "rows_per_window": round(rows / n, 4),
        "predict_share": round(waited / dt, 3),
    }


def jvm_rate(s, data: list[bytes]) -> dict:
    """Every window's record built by ``explode_records`` from the batches' compact scores."""
    from pyflink.table import DataTypes

    from sensorwatch.core.outputs import WINDOW_SCORES
    from sensorwatch.jobs.pipeline import function_env
    from sensorwatch.udfs.batch import decode
    from sensorwatch.udfs.scoring import BatchScorer

    scorer = BatchScorer(s)
    pairs = []
    try:
        for b in data:
            packed = [o.packed for o in scorer.score(decode(b)) if o.kind == WINDOW_SCORES]
            pairs.append((bytearray(b), bytearray(packed[0])))
    finally:
        scorer.close()
    env = function_env("explode_records")
    row = DataTypes.ROW([DataTypes.FIELD("batch", DataTypes.BYTES()), DataTypes.FIELD("packed", DataTypes.BYTES())])
    env.create_temporary_view("scored_batches", env.from_elements(pairs * 3, row))
    # the count and the records' total length come back; the records stay in the JVM. The same
    # query without the builder (each batch's bytes counted) is the baseline: reading the rows
    # in, which the job does not pay here (its batches are already JVM rows)
    explode = (
        "SELECT COUNT(*), SUM(CHAR_LENGTH(r.v)) FROM scored_batches, "
        "LATERAL TABLE(explode_records(batch, packed, TRUE)) AS r"
    )
    baseline = "SELECT COUNT(*), SUM(CASE WHEN batch IS NULL OR packed IS NULL THEN 0 ELSE 1 END) FROM scored_batches"

    def timed(sql: str) -> tuple[float, tuple]:
        t0 = time.perf_counter()
        with env.execute_sql(sql).collect() as rows:
            got = tuple(next(iter(rows)))
        return time.perf_counter() - t0, got

    timed(explode)  # warm-up run: the JIT, the job's start
    t_base = min(timed(baseline)[0] for _ in range(2))
    t_all, (n, chars) = min((timed(explode) for _ in range(2)), key=lambda x: x[0])
    dt = max(t_all - t_base, 1e-9)
    return {
        "records_per_s": round(n / dt),
        "records": n,
        "mean_record_chars": round(chars / n),
        "seconds": round(t_all, 2),
        "baseline_seconds": round(t_base, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=334, help="x 3 tags = sensors")
    ap.add_argument("--rounds", type=int, default=40, help="window ends scored (each: one batch per shard)")
    args = ap.parse_args()

    from sensorwatch.app import local
    from sensorwatch.core.config import Settings
    from sensorwatch.simulate.fleet import Fleet
    from sensorwatch.stack.kafka_broker import free_port

    s = Settings()
    s.simulator.devices = args.devices
    s.serving.layout = "packed"
    s.training.epochs, s.training.plots = 5, False
    s.training.tracking.enabled = False
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        s.serving.port, s.serving.target, s.serving.model_base_path = port, f"127.0.0.1:{port}", Path(tmp) / "models"
        fleet = Fleet(s.simulator)
        t = time.time()
        trained = local.train_on_history(s, fleet.start_ms, hours=1.0)["trained"]
        print(f"trained {trained} sensors in {time.time() - t:.0f} s", flush=True)
        data = batches(s, fleet, args.rounds)
        server = local.ModelServerProcess(s, Path(tmp) / "server.log").start()
        try:
            default = python_rate(s, data, emit_scores=False)
            every = python_rate(s, data, emit_scores=True)
            jvm = jvm_rate(s, data)
        finally:
            server.stop()
    print(f"{len(data)} batches of about {trained / s.serving.packed_groups:.0f} windows")
    print(f"Python scorer, anomaly records only: {default['windows_per_s']:,} windows/s ({default})")
    print(f"Python scorer, every score published: {every['windows_per_s']:,} windows/s ({every})")
    print(f"JVM explode_records, every window's record: {jvm['records_per_s']:,} records/s ({jvm})")
    print(f"JVM records per second / Python windows per second: {jvm['records_per_s'] / every['windows_per_s']:.1f}x")
    print(
        json.dumps(
            {
                "sensors": trained,
                "python_windows_per_s": default["windows_per_s"],
                "python_all_scores_windows_per_s": every["windows_per_s"],
                "predict_wait_share": default["predict_share"],
                "python_rows_per_window": default["rows_per_window"],
                "jvm_records_per_s": jvm["records_per_s"],
                "jvm_mean_record_chars": jvm["mean_record_chars"],
                "jvm_to_python_ratio": round(jvm["records_per_s"] / every["windows_per_s"], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
