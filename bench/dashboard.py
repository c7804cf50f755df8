"""The dashboard at fleet scale: 1,000 sensors over 24 hours, page latency and memory.

One run, side by side:

1. **Fill.** The store takes 24 h of 1,000 sensors the way its rings see them: a window mean
   and a score every coarse bucket (2 min) over the day, and every window (5 s) over the last
   hour, plus incidents; the rate of ``FleetStore.ingest`` is measured on the way.
2. **Memory.** Resident memory of the process and the store's own bytes after 24 h, then after
   another 24 h of the same: bounded means the second day adds nothing.
3. **Pages.** The real app on uvicorn, over HTTP: the sensor page at 24 h and at 1 h for random
   sensors, the fleet page and the overview JSON, p50/p99/max.
4. **Feed.** With ``--feed-records N`` (default 300k), a real local broker: N records produced
   into the output topics, then the time the feed takes to read them into a fresh store.

    .venv/bin/python bench/dashboard.py [--sensors 1000 --feed-records 300000]

Ends with one JSON line of its figures.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
import urllib.request

import numpy as np

from sensorwatch.core.config import Settings
from sensorwatch.dashboard.app import Dashboard
from sensorwatch.dashboard.store import FleetStore

DAY_MS = 86_400_000


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fill_day(store: FleetStore, sensors: list[str], end_ms: int, window_ms: int, rng: random.Random) -> int:
    """A day of records ending at ``end_ms``; returns how many were ingested."""
    n = 0
    coarse = store.coarse_ms
    fine_from = end_ms - store.cfg.fine_buckets * window_ms
    steps = list(range(end_ms - DAY_MS + coarse, fine_from, coarse)) + list(range(fine_from, end_ms + 1, window_ms))
    for t in steps:
        for s in sensors:
            store.ingest("aggregate", {"sensor": s, "window_end": t, "mean": 20.0 + rng.random()})
            store.ingest(
                "score",
                {
                    "sensor": s,
                    "status": "scored",
                    "window_end": t,
                    "score": rng.random(),
                    "threshold": 1.5,
                    "model_name": "packed-000",
                    "model_version": 1 + (t > end_ms - DAY_MS / 2),
                },
            )
            n += 2
    for s in sensors:  # a few incidents each over the day
        for k in range(4):
            start = end_ms - DAY_MS + (k + 1) * DAY_MS // 5
            iid = f"{s}@{start}"
            base = {"incident_id": iid, "sensor": s, "start": start, "severity": 40 + 10 * k, "learning": False}
            store.ingest("incident", {**base, "event": "opened", "end": None})
            store.ingest("incident", {**base, "event": "closed", "end": start + 60_000, "closed_by": "recovery"})
            n += 2
    return n


def timed_get(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
    return (time.perf_counter() - t0) * 1000, len(body)


def latency(urls: list[str]) -> dict:
    timed_get(urls[0])  # warm
    ms, sizes = zip(*(timed_get(u) for u in urls))
    a = np.asarray(ms)
    return {
        "n": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
        "max_ms": round(float(a.max()), 1),
        "kib": round(float(np.mean(sizes)) / 1024, 1),
    }


def feed_rate(n_records: int, sensors: list[str]) -> dict:
    from confluent_kafka import Producer

    from sensorwatch.core.kafka import librdkafka_options
    from sensorwatch.dashboard.feed import TopicFeed
    from sensorwatch.stack import LocalStack

    s = Settings()
    s.stack.work_dir = tempfile.mkdtemp(prefix="sw-bench-ui-")
    s.stack.kafka_port = s.stack.controller_port = 0
    s.dashboard.from_start = True
    stack = LocalStack(s)
    stack.up()
    try:
        p = Producer(librdkafka_options(s.kafka, "producer"))
        t = s.kafka.topics
        now = int(time.time() * 1000) // 5000 * 5000
        per = n_records // (2 * len(sensors))
        for k in range(per):
            end = now - (per - k) * 5000
            for sensor in sensors:
                p.produce(t.aggregates, json.dumps({"sensor": sensor, "window_end": end, "mean": 1.0}).encode())
                rec = {
                    "sensor": sensor,
                    "status": "scored",
                    "window_end": end,
                    "score": 0.5,
                    "threshold": 1.5,
                    "model_name": "packed-000",
                    "model_version": 1,
                    "granularity": "sensor",
                }
                p.produce(t.scores, json.dumps(rec).encode())
                p.poll(0)
        p.flush(60)
        store = FleetStore(s.dashboard, 5000)
        feed = TopicFeed(s, store)
        t0 = time.monotonic()
        feed.start()
        feed.caught_up.wait(600)
        took = time.monotonic() - t0
        feed.stop()
        return {"records": store.records, "seconds": round(took, 2), "records_per_s": round(store.records / took)}
    finally:
        stack.down()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=200, help="sensor pages timed per range")
    ap.add_argument("--feed-records", type=int, default=300_000, help="0: skip the broker part")
    args = ap.parse_args()
    settings = Settings()
    window_ms = int(settings.job.window_s * 1000)
    sensors = [f"dev-{i // 3:04d}/{('temperature', 'pressure', 'vibration')[i % 3]}" for i in range(args.sensors)]
    rng = random.Random(7)
    store = FleetStore(settings.dashboard, window_ms)
    rss0 = rss_mib()
    end = int(time.time() * 1000) // window_ms * window_ms
    t0 = time.perf_counter()
    n = fill_day(store, sensors, end - DAY_MS, window_ms, rng)
    ingest_s = time.perf_counter() - t0
    rss_day1, bytes_day1 = rss_mib(), store.nbytes()
    n2 = fill_day(store, sensors, end, window_ms, rng)
    rss_day2, bytes_day2 = rss_mib(), store.nbytes()
    print(f"ingest: {n} records in {ingest_s:.1f} s = {n / ingest_s:,.0f} records/s")
    print(
        f"memory: rings {bytes_day1 / 2**20:.1f} MiB after a day, {bytes_day2 / 2**20:.1f} MiB after two; "
        f"process RSS {rss0:.0f} -> {rss_day1:.0f} -> {rss_day2:.0f} MiB"
    )
    settings.dashboard.port = 0
    ui = Dashboard(settings, store, follow=False).start()  # the real app, fed by this run only
    url = ui.url
    try:
        pick = [rng.choice(sensors) for _ in range(args.requests)]
        pages = {
            "sensor_24h": latency([f"{url}/sensor/{s}?range=24h" for s in pick]),
            "sensor_1h": latency([f"{url}/sensor/{s}?range=1h" for s in pick]),
            "fleet": latency([f"{url}/"] * 50),
            "overview_json": latency([f"{url}/api/overview"] * 50),
        }
    finally:
        ui.stop()
    for name, d in pages.items():
        print(f"{name:>14}: p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms, max {d['max_ms']} ms, {d['kib']} KiB")
    feed = feed_rate(args.feed_records, sensors) if args.feed_records else None
    if feed:
        print(
            f"feed: {feed['records']} records from a real broker in {feed['seconds']} s = {feed['records_per_s']:,}/s"
        )
    out = {
        "bench": "dashboard",
        "sensors": args.sensors,
        "store_ingest_per_s": round(n / ingest_s),
        "records_day2": n2,
        "ring_mib_day1": round(bytes_day1 / 2**20, 1),
        "ring_mib_day2": round(bytes_day2 / 2**20, 1),
        "rss_mib": [round(rss0), round(rss_day1), round(rss_day2)],
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "pages": pages,
        "feed": feed,
        "sensor_page_24h_under_1s": pages["sensor_24h"]["max_ms"] < 1000,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
