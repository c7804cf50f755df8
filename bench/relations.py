"""Relation faults: device models against sensor models on the same pumps, in one run.

The simulator's pumps (``simulator.pumps``) carry four tags that follow one hidden load. Its
``decouple`` fault makes one tag follow a second, independent load of the same kind: each tag
stays inside its own normal range, with its own normal dynamics, and only the relation between
the tags breaks. That is the fault a model of one sensor cannot see and a model of the device
can.

1. Both kinds train on the same eight hours of clean history (``sensorwatch train``'s code:
   ``granularity`` ``sensor``, then ``device``), the configuration's defaults otherwise.
2. The stretch of the same fleet that follows (faults injected) is windowed as the job
   windows it and scored by the real model server (TF Serving's gRPC API) through the job's
   scorer (:class:`~sensorwatch.udfs.scoring.BatchScorer`), so the records are the product's.
3. Per kind: **recall** (faults with an anomalous window of their device overlapping them),
   **precision** (alarms, runs of consecutive anomalous windows of a device, that overlap a
   fault), and for device models the share of detected faults whose injected tag is among the
   top two tags of the record with the highest score in the fault.

    .venv/bin/python bench/relations.py [--pumps 20 --hours 4]

Ends with one JSON line: {"device": {"recall", "precision", ...}, "sensor": {...}, "top2_share": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def windows_of(series: dict, s, granularity: str):
    """The job's count windows of every pump, as batches for the scorer."""
    from sensorwatch.core.windows import device_sequences, device_series, sequences
    from sensorwatch.udfs.batch import DeviceBatch, WindowBatch

    S, w_ms = s.job.seq_len, int(s.job.window_s * 1000)
    if granularity == "device":
        out = []
        for name, d in device_series(series).items():
            X, ends = device_sequences(d, S, 1, w_ms)
            tags = np.empty((len(ends), len(d.tags)), object)
            tags[:] = d.tags
            out.append(DeviceBatch([name] * len(ends), ends - S * w_ms, ends, ends, tags, X.astype(np.float64)))
        return out
    out = []
    for name, ser in series.items():
        X, ends = sequences(ser, S, 1, w_ms)
        out.append(WindowBatch([name] * len(ends), ends - S * w_ms, ends, ends, X.astype(np.float64)))
    return out


def anomalies(out) -> list[dict]:
    """The anomalous windows among one batch's scorer outputs: a device model's records (made in
    Python), and a sensor model's from the batch's compact scores (the job builds their records
    in the JVM, from the same columns)."""
    from sensorwatch.core.outputs import WINDOW_SCORES
    from sensorwatch.udfs.batch import decode_scores

    recs = [json.loads(o.value) for o in out if o.kind == "anomaly"]
    for o in out:
        if o.kind != WINDOW_SCORES:
            continue
        b = decode_scores(o.packed)
        for i in np.flatnonzero(b.cols["anomaly"]).tolist():
            if "/" not in b.sensors[i]:
                continue  # a device model's window (keyed by its device): its record is above
            recs.append(
                {
                    "sensor": b.sensors[i],
                    "device": b.sensors[i].split("/")[0],
                    "window_end": int(b.cols["end"][i]),
                    "score": float(b.cols["score"][i]),
                    "threshold": float(b.cols["threshold"][i]),
                }
            )
    return recs


def evaluate(records: list[dict], labels, s) -> dict:
    """Recall, alarm precision and (device records) the top-two tag share; see the module docstring."""
    w_ms, S = int(s.job.window_s * 1000), s.job.seq_len
    by_device: dict[str, list[dict]] = {}
    for r in records:
        by_device.setdefault(r["device"], []).append(r)
    events = [lab for lab in labels if lab.kind == "decouple"]
    alarms = true_alarms = 0
    for dev, recs in by_device.items():
        ends = sorted({r["window_end"] for r in recs})
        runs, prev = [], None
        for e in ends:
            if prev is not None and e - prev <= w_ms:
                runs[-1].append(e)
            else:
                runs.append([e])
            prev = e
        mine = [lab for lab in events if lab.device == dev]
        for run in runs:
            alarms += 1
            lo, hi = run[0] - S * w_ms, run[-1]
            true_alarms += any(lab.start < hi and lab.end > lo for lab in mine)
    detected = top2 = 0
    for lab in events:
        hits = [
            r
            for r in by_device.get(lab.device, [])
            if r["window_end"] - S * w_ms < lab.end and r["window_end"] > lab.start
        ]
        if not hits:
            continue
        detected += 1
        peak = max(hits, key=lambda r: r["score"] - r["threshold"])
        if peak.get("tags"):
            top2 += lab.tags[0] in [t["tag"] for t in peak["tags"][:2]]
    return {
        "events": len(events),
        "detected": detected,
        "recall": round(detected / max(1, len(events)), 3),
        "alarms": alarms,
        "precision": round(true_alarms / alarms, 3) if alarms else None,
        "top2": top2,
        "top2_share": round(top2 / detected, 3) if detected else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pumps", type=int, default=20)
    ap.add_argument("--hours", type=float, default=4.0, help="event time scored, faults injected")
    ap.add_argument("--train-hours", type=float, default=8.0, help="clean history both kinds learn from")
    ap.add_argument("--learning-rate", type=float, default=None, help="both kinds alike; default the configuration's")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    from sensorwatch.app import local
    from sensorwatch.core.config import Settings
    from sensorwatch.simulate.history import fleet_history
    from sensorwatch.stack.kafka_broker import free_port
    from sensorwatch.training.trainer import summary, train_fleet
    from sensorwatch.udfs.scoring import BatchScorer

    t0 = time.time()
    s = Settings()
    if args.learning_rate:
        s.training.learning_rate = args.learning_rate
    sim = s.simulator
    sim.pumps, sim.seed = args.pumps, args.seed
    sim.devices = 0
    live_start = 1_800_000_000_000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        s.serving.model_base_path = work / "models"
        port = free_port()
        s.serving.port, s.serving.target = port, f"127.0.0.1:{port}"
        hist = local.history_config(sim, live_start, args.train_hours)
        history, _ = fleet_history(hist, int(s.job.window_s * 1000), loss_rate=0.01)
        trained = {}
        for granularity in ("sensor", "device"):
            t = time.time()
            out = summary(train_fleet(history, s, progress=False, plots=False, granularity=granularity))
            trained[granularity] = {
                "models": out["trained"],
                "failed": out["failed"],
                "seconds": round(time.time() - t, 1),
            }
            print(f"trained {out['trained']} {granularity} models in {time.time() - t:.0f} s", flush=True)
        live = sim.model_copy(update={"start_ms": live_start, "duration_s": args.hours * 3600, "warmup_s": 300.0})
        series, labels = fleet_history(live, int(s.job.window_s * 1000))
        server = local.ModelServerProcess(s, work / "model-server.log").start()
        results = {}
        try:
            for granularity in ("device", "sensor"):
                scorer = BatchScorer(s)
                records = []
                try:
                    for batch in windows_of(series, s, granularity):
                        records += anomalies(scorer.score(batch))
                finally:
                    scorer.close()
                results[granularity] = {**evaluate(records, labels, s), "anomaly_records": len(records)}
        finally:
            server.stop()
    print(f"{args.pumps} pumps, {args.hours:g} h scored, {results['device']['events']} decouple faults")
    print(f"{'models':<8}{'recall':>8}{'precision':>11}{'alarms':>8}{'top-2 tag':>11}")
    for k, r in results.items():
        top2 = "" if k == "sensor" else f"{r['top2_share']}"
        print(f"{k:<8}{r['recall']:>8}{r['precision']!s:>11}{r['alarms']:>8}{top2:>11}")
    d, sn = results["device"], results["sensor"]
    print(
        f"device/sensor recall ratio {d['recall'] / max(sn['recall'], 1e-9):.1f}x; "
        f"floors: device recall >= 0.8 at precision >= 0.9, sensor recall < 0.3, top-2 >= 0.8"
    )
    print(
        json.dumps(
            {
                "device": d,
                "sensor": sn,
                "top2_share": d["top2_share"],
                "training": trained,
                "pumps": args.pumps,
                "hours": args.hours,
                "seconds": round(time.time() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
