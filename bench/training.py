"""Training many sensor models: packed (vectorised) against one model at a time, same run.

1,000 sensors x 2,000 count windows each (S = 16, 3 features), dense autoencoders, the
configured epochs. Three ways, each ending with published, registered SavedModels:

* packed: the packed layout (``packed_groups`` SavedModels, each a stack of sensors);
* vectorised per-sensor: chunks of sensors trained as one stack, exported as one
  SavedModel per sensor (the per-sensor layout as ``sensorwatch train`` does it);
* one at a time: a G = 1 model per sensor (chunk_size 1), measured on a sample of
  sensors and scaled to all of them (said so in the JSON line);
* device models, packed: as many devices of ``--device-tags`` tags (8) as there are sensors,
  each tag one of the same histories, one model per device over all its tags
  (``granularity="device"``, the relations mode); ``device_over_sensor`` is its time over
  the packed sensor models'.

Plots are off (they cost ~40 ms a sensor and are not training).

    .venv/bin/python bench/training.py [--sensors 1000 --windows 2000 --sample 20]

Ends with one JSON line: {"models", "seconds_packed", "seconds_one_at_a_time", ...}.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--windows", type=int, default=2000)
    ap.add_argument("--sample", type=int, default=20, help="sensors timed one at a time, then scaled")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--skip-per-sensor", action="store_true")
    ap.add_argument(
        "--device-tags", type=int, default=8, help="also train as many device models of this many tags (0: skip)"
    )
    args = ap.parse_args()

    from sensorwatch.core.config import load_settings
    from sensorwatch.simulate.history import fleet_history
    from sensorwatch.training.trainer import summary, train_fleet

    S = 16
    base = load_settings(None)
    window_s = base.job.window_s
    sim = {
        "devices": args.sensors,
        "tags": ["temperature"],
        "duration_s": (args.windows + S - 1) * window_s,
        "start_ms": 1_700_000_000_000,
        "anomaly_rate_per_hour": 0.0,
        "out_of_order_rate": 0.0,
    }
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:

        def settings(name, **kw):
            tr = {
                "workers": args.workers,
                "plots": False,
                **({"epochs": args.epochs} if args.epochs else {}),
                **kw.pop("training", {}),
            }
            return load_settings(
                None,
                overrides={"simulator": sim, "training": tr, "serving": {"model_base_path": f"{tmp}/{name}", **kw}},
            )

        s = settings("x")
        hist, _ = fleet_history(s.simulator, int(window_s * 1000))
        n_windows = len(next(iter(hist.values()))) - S + 1
        print(
            f"{len(hist)} sensors x {n_windows} windows (S={S}), {s.training.kind}, {s.training.epochs} epochs; "
            f"data built in {time.time() - t0:.1f} s",
            flush=True,
        )
        res = {}

        def timed(name, series, st):
            t = time.time()
            out = summary(train_fleet(series, st, progress=False))
            sec = time.time() - t
            assert out["trained"] == len(series), out
            print(f"{name:<28}{len(series):>6} models {sec:>9.1f} s {len(series) / sec:>9.1f} models/s", flush=True)
            return sec

        res["seconds_packed"] = timed("packed (8 groups)", hist, settings("packed", layout="packed"))
        if args.device_tags:
            # 1,000 devices of 8 tags: each tag a sensor history of the same run, renamed
            names = sorted(hist)
            k = args.device_tags
            devices = {
                f"dev-{d:04d}/t{j}": hist[names[(d * k + j) % len(names)]] for d in range(len(names)) for j in range(k)
            }
            for key, ser in devices.items():
                ser = ser.__class__(key, ser.window_end, ser.mean, ser.stddev, ser.count)
                devices[key] = ser
            st = settings("devices", layout="packed")
            t = time.time()
            out = summary(train_fleet(devices, st, progress=False, granularity="device"))
            sec = time.time() - t
            assert out["trained"] == len(names), out
            print(f"{'packed devices (' + str(k) + ' tags)':<28}{out['trained']:>6} models {sec:>9.1f} s", flush=True)
            res["seconds_packed_devices"] = sec
            res["device_tags"] = k
            res["device_over_sensor"] = round(sec / res["seconds_packed"], 2)
        if not args.skip_per_sensor:
            res["seconds_per_sensor_vectorised"] = timed("per-sensor, vectorised", hist, settings("chunked"))
        sample = dict(list(hist.items())[: args.sample])
        one = timed("one at a time (sample)", sample, settings("one", training={"chunk_size": 1}))
        res["seconds_one_at_a_time"] = one * len(hist) / len(sample)
        res["one_at_a_time_measured_on"] = len(sample)
    res = {
        "models": len(hist),
        "windows_per_model": n_windows,
        "epochs": s.training.epochs,
        **{k: round(v, 1) if isinstance(v, float) else v for k, v in res.items()},
    }
    res["speedup_packed"] = round(res["seconds_one_at_a_time"] / res["seconds_packed"], 1)
    print(
        f"one at a time, scaled to {len(hist)}: {res['seconds_one_at_a_time']:.0f} s; "
        f"packed is {res['speedup_packed']}x faster"
    )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
