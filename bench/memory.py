"""The model server's memory and load time for 1,000 sensors, per layout, and across reloads.

Users of many-model serving report memory as the cost that bites (TF Serving's issues about
thousands of models). This measures, in one run, for the same 1,002 sensors (334 devices x 3
tags, dense autoencoders trained on an hour of clean history, 1 epoch: the weights' values do
not change their size):

1. **per-sensor** (1,002 SavedModels) and **packed** (8 SavedModels) layouts: the server's
   resident size (RSS, ``/proc``) and its load time, from the process start until every model
   answers ``AVAILABLE`` through GetModelStatus.
2. **Reloads**: ``--reloads`` times, a new version of every model (its newest version copied to
   the next number, as a retrain publishes it). The server loads it, serves it and unloads the
   old one (the ``latest`` policy), and the old folder is then deleted. The RSS after each
   round shows whether the memory of unloaded versions returns: the floor is RSS after the
   last reload within 1.2x the RSS after the first load.

    .venv/bin/python bench/memory.py [--devices 334 --reloads 20 --per-sensor-reloads 20]

Ends with one JSON line: {"per_sensor": {...}, "packed": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def newest(model_dir: Path) -> int:
    from sensorwatch.serving.repository import versions_on_disk

    return max(versions_on_disk(model_dir))


def wait_serving(client, want: dict[str, int], timeout_s: float) -> float:
    """Seconds until every model serves the version ``want`` names, and only that one."""
    from sensorwatch.serving.protos import pb

    available = pb.get_model_status_pb2.ModelVersionStatus.AVAILABLE
    t0, pending = time.monotonic(), dict(want)
    while pending:
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{len(pending)} models not serving their new version after {timeout_s} s")
        for name, version in list(pending.items()):
            states = {int(st.version): st.state for st in client.status(name)}
            if states.get(version) == available and all(st != available for v, st in states.items() if v != version):
                del pending[name]
        if pending:
            time.sleep(0.2)
    return time.monotonic() - t0


def measure(s, layout: str, reloads: int, work: Path) -> dict:
    from sensorwatch.app import local
    from sensorwatch.serving.client import ScoringClient

    base = Path(s.serving.model_base_path)
    models = sorted(p for p in base.iterdir() if p.is_dir())
    t0 = time.monotonic()
    server = local.ModelServerProcess(s, work / f"server-{layout}.log").start(timeout_s=1800)
    client = ScoringClient(s.serving)
    try:
        load_s = time.monotonic() - t0 + wait_serving(client, {m.name: newest(m) for m in models}, 1800)
        first = rss_mib(server.proc.pid)
        print(f"{layout}: {len(models)} models loaded in {load_s:.1f} s, server RSS {first:.0f} MiB", flush=True)
        after, reload_s = [], []
        for r in range(reloads):
            old = {m.name: newest(m) for m in models}
            for m in models:
                shutil.copytree(m / str(old[m.name]), m / str(old[m.name] + 1))
            reload_s.append(wait_serving(client, {name: v + 1 for name, v in old.items()}, 1800))
            for m in models:
                shutil.rmtree(m / str(old[m.name]))
            after.append(rss_mib(server.proc.pid))
            print(f"  reload {r + 1}: {reload_s[-1]:.1f} s, RSS {after[-1]:.0f} MiB", flush=True)
    finally:
        client.close()
        server.stop()
    return {
        "models": len(models),
        "load_s": round(load_s, 1),
        "rss_mib": round(first, 1),
        "reloads": reloads,
        "reload_s_median": round(sorted(reload_s)[len(reload_s) // 2], 1) if reload_s else None,
        "rss_after_reloads_mib": [round(x, 1) for x in after],
        "rss_ratio": round(after[-1] / first, 3) if after else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=334, help="x 3 tags = sensors")
    ap.add_argument("--reloads", type=int, default=20, help="reload rounds of the packed layout")
    ap.add_argument("--per-sensor-reloads", type=int, default=20, help="reload rounds of the per-sensor layout")
    ap.add_argument("--work", default=".sensorwatch/bench-memory")
    args = ap.parse_args()

    from sensorwatch.app import local
    from sensorwatch.core.config import Settings
    from sensorwatch.stack.kafka_broker import free_port

    t_all = time.time()
    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    results, trained = {}, {}
    for layout, reloads in (("packed", args.reloads), ("per-sensor", args.per_sensor_reloads)):
        s = Settings()
        s.simulator.devices = args.devices
        s.training.epochs, s.training.plots = 1, False
        s.serving.layout, s.serving.poll_wait_s = layout, 0.5
        s.serving.model_base_path = work / layout
        port = free_port()
        s.serving.port, s.serving.target = port, f"127.0.0.1:{port}"
        t = time.time()
        out = local.train_on_history(s, 1_800_000_000_000, hours=1.0)
        trained[layout] = round(time.time() - t, 1)
        print(f"{layout}: trained {out['trained']} sensors in {trained[layout]:.0f} s", flush=True)
        results[layout.replace("-", "_")] = {**measure(s, layout, reloads, work), "sensors": out["trained"]}
    print(f"{'layout':<12}{'models':>8}{'load s':>9}{'RSS MiB':>10}{'after reloads':>15}{'ratio':>8}")
    for k, r in results.items():
        last = r["rss_after_reloads_mib"][-1] if r["rss_after_reloads_mib"] else None
        print(f"{k:<12}{r['models']:>8}{r['load_s']:>9}{r['rss_mib']:>10}{last!s:>15}{r['rss_ratio']!s:>8}")
    p, ps = results["packed"], results["per_sensor"]
    print(
        f"per-sensor over packed: RSS {ps['rss_mib'] / p['rss_mib']:.1f}x, load time {ps['load_s'] / p['load_s']:.1f}x"
    )
    print(json.dumps({**results, "training_s": trained, "seconds": round(time.time() - t_all, 1)}))


if __name__ == "__main__":
    main()
