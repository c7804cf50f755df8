"""Cold start: new sensors scored by their tags' fleet priors, against their own models, in one run.

The simulated fleet's devices are split in two. The *fleet* (the first half) trains its own
models and the fleet priors, one per tag, on its clean history (``sensorwatch train``'s code).
The *new* devices (the second half) join when the scored stretch begins:

* **prior**: they have no model; the real model server (TF Serving's gRPC API) has the fleet's
  models and the priors, and the job's scorer (:class:`~sensorwatch.udfs.scoring.BatchScorer`)
  sends their windows to their tags' priors, normalised online from their first window;
* **own**: the same windows scored by models of their own, trained on the same length of
  clean history as the fleet's (what the lifecycle gives them once their history suffices).

Both runs' raw scores go through the job's incident rules (the reference
:class:`~sensorwatch.core.incidents.IncidentTracker`, each model's seed), and the incidents are
scored against the injected events of the new devices: recall, precision, false incidents.

    .venv/bin/python bench/prior.py [--devices 20 --hours 4]

Ends with one JSON line: {"prior": {"recall", "precision", ...}, "own": {...}, "recall_ratio", ...}.
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


def incidents(s, series: dict, repo_base: Path) -> list[dict]:
    """Score every window of ``series`` (one batch per sensor, in order) through the job's scorer
    against the served models, and run the incident rules over the raw scores."""
    from sensorwatch.core.incidents import IncidentTracker
    from sensorwatch.core.outputs import WINDOW_SCORES
    from sensorwatch.core.windows import sequences
    from sensorwatch.udfs.batch import WindowBatch, decode_scores
    from sensorwatch.udfs.scoring import BatchScorer

    S, w_ms = s.job.seq_len, int(s.job.window_s * 1000)
    out: list[dict] = []
    scorer = BatchScorer(s)
    try:
        for name, ser in sorted(series.items()):
            X, ends = sequences(ser, S, 1, w_ms)
            batch = WindowBatch([name] * len(ends), ends - S * w_ms, ends, ends, X.astype(np.float64))
            tracker = IncidentTracker(s.job.incidents, w_ms)
            for o in scorer.score(batch):
                if o.kind != WINDOW_SCORES:
                    continue
                b = decode_scores(o.packed)
                c = b.cols
                for i in np.argsort(c["end"], kind="stable").tolist():
                    seed = (float(c["seed_n"][i]), float(c["seed_mean"][i]), float(c["seed_var"][i]))
                    for e in tracker.step(
                        int(c["end"][i]),
                        float(c["score"][i]),
                        float(c["threshold"][i]),
                        version=int(c["version"][i]),
                        seed=seed,
                        model=b.models[i],
                    ):
                        out.append(
                            {
                                "incident_id": f"{name}@{e.start}",
                                "sensor": name,
                                "event": e.event,
                                "start": e.start,
                                "end": e.end,
                                "learning": e.learning,
                                "prior": bool(c["prior"][i]),
                            }
                        )
    finally:
        scorer.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=20, help="half the fleet, half new")
    ap.add_argument("--hours", type=float, default=4.0, help="event time scored, anomalies injected")
    ap.add_argument("--train-hours", type=float, default=2.0, help="clean history each trained model learns from")
    ap.add_argument("--rate", type=float, default=1.0, help="injected anomalies per sensor and hour")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    from sensorwatch.app import local
    from sensorwatch.app.evaluate import evaluate_incidents
    from sensorwatch.core.config import Settings
    from sensorwatch.simulate.history import fleet_history
    from sensorwatch.stack.kafka_broker import free_port
    from sensorwatch.training.trainer import summary, train_fleet

    t0 = time.time()
    s = Settings()
    sim = s.simulator
    sim.devices, sim.seed, sim.anomaly_rate_per_hour = args.devices, args.seed, args.rate
    w_ms = int(s.job.window_s * 1000)
    live_start = 1_800_000_000_000
    history, _ = fleet_history(local.history_config(sim, live_start, args.train_hours), w_ms, loss_rate=0.01)
    live = sim.model_copy(update={"start_ms": live_start, "duration_s": args.hours * 3600, "warmup_s": 0.0})
    series, labels = fleet_history(live, w_ms)
    devices = sorted({k.split("/")[0] for k in history})
    new = set(devices[len(devices) // 2 :])

    def is_new(sensor: str) -> bool:
        return sensor.split("/")[0] in new

    results, trained = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for run, train in (
            ("prior", {k: v for k, v in history.items() if not is_new(k)}),  # the fleet, and its priors
            ("own", {k: v for k, v in history.items() if is_new(k)}),  # the new devices' own models
        ):
            r = s.model_copy(deep=True)
            r.serving.model_base_path = Path(tmp) / run / "models"
            port = free_port()
            r.serving.port, r.serving.target = port, f"127.0.0.1:{port}"
            t = time.time()
            out = summary(train_fleet(train, r, progress=False, plots=False, priors=run == "prior"))
            trained[run] = {"models": out["trained"], "priors": out["priors"], "seconds": round(time.time() - t, 1)}
            print(f"{run}: trained {out['trained']} models and {out['priors']} priors in {time.time() - t:.0f} s")
            server = local.ModelServerProcess(r, Path(tmp) / run / "model-server.log").start()
            try:
                found = incidents(r, {k: v for k, v in series.items() if is_new(k)}, r.serving.model_base_path)
            finally:
                server.stop()
            mine = [lab.to_dict() for lab in labels if is_new(lab.sensor)]
            ev = evaluate_incidents(found, mine, w_ms, s.job.seq_len).to_dict()
            sensor_hours = sum(is_new(k) for k in series) * args.hours
            opened = [x for x in found if x["event"] == "opened" and not x["learning"]]
            assert run == "own" or all(x["prior"] for x in found), "the new devices are scored by priors alone"
            results[run] = {
                **{k: ev[k] for k in ("events", "detected", "recall", "alerts", "true_alerts", "precision")},
                "false_incidents_per_sensor_hour": round((ev["alerts"] - ev["true_alerts"]) / sensor_hours, 4),
                "learning_incidents": sum(x["event"] == "opened" and x["learning"] for x in found),
                "incidents": len(opened),
                "delay_s_median": ev["delay_s_median"],
                "per_kind": ev["per_kind"],
            }
    print(f"{len(new)} new devices of {len(devices)}, {args.hours:g} h scored, {results['own']['events']} events")
    print(f"{'scored by':<10}{'recall':>8}{'precision':>11}{'incidents':>11}{'false/sensor-h':>16}")
    for k, v in results.items():
        print(
            f"{k:<10}{v['recall']:>8}{v['precision']!s:>11}{v['incidents']:>11}{v['false_incidents_per_sensor_hour']:>16}"
        )
    p, o = results["prior"], results["own"]
    print(f"prior / own: recall {p['recall'] / max(o['recall'], 1e-9):.2f}x")
    print(
        json.dumps(
            {
                "prior": p,
                "own": o,
                "recall_ratio": round(p["recall"] / max(o["recall"], 1e-9), 3),
                "trained": trained,
                "new_devices": len(new),
                "devices": len(devices),
                "hours": args.hours,
                "seconds": round(time.time() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
