"""The dashboard's store: what a page shows, from records, in memory that does not grow."""

from __future__ import annotations

import numpy as np

from sensorwatch.core.config import DashboardConfig
from sensorwatch.dashboard.chart import render
from sensorwatch.dashboard.store import FleetStore

W = 5000


def feed(store: FleetStore, sensor: str, windows: range, score=lambda t: 1.0, version=lambda t: 1) -> None:
    for k in windows:
        t = k * W
        store.ingest("aggregate", {"sensor": sensor, "window_end": t, "mean": float(k % 7)})
        store.ingest(
            "score",
            {
                "sensor": sensor,
                "status": "scored",
                "window_end": t,
                "score": score(k),
                "threshold": 3.0,
                "model_name": "m",
                "model_version": version(k),
            },
        )


def test_memory_is_bounded_by_the_buckets_not_by_time():
    cfg = DashboardConfig(fine_buckets=50, coarse_buckets=40, range_s=400)
    store = FleetStore(cfg, W)
    feed(store, "d/a", range(1, 200))
    held = store.nbytes()
    feed(store, "d/a", range(200, 5000))
    assert store.nbytes() == held
    view = store.series("d/a", 400_000)
    assert len(view.ts) <= cfg.coarse_buckets + 1
    # the coarse buckets keep each bucket's extremes: the means cycle 0..6 within every bucket
    assert np.nanmin(view.mean_min) == 0 and np.nanmax(view.mean_max) == 6


def test_sensors_past_max_sensors_drop_the_one_quiet_the_longest():
    store = FleetStore(DashboardConfig(max_sensors=3, fine_buckets=10, coarse_buckets=10), W)
    for name in ("d/a", "d/b", "d/c"):
        feed(store, name, range(1, 3))
    feed(store, "d/a", range(3, 4))  # d/b is now the quietest
    feed(store, "d/d", range(1, 3))
    assert len(store) == 3 and store.evicted == 1
    assert store.sensor("d/b") is None and store.sensor("d/a") is not None


def test_a_write_older_than_its_recycled_bucket_is_dropped_not_mixed_in():
    store = FleetStore(DashboardConfig(fine_buckets=10, coarse_buckets=10, range_s=100), W)
    feed(store, "d/a", range(1, 30))  # 29 windows through 10-slot rings
    store.ingest("aggregate", {"sensor": "d/a", "window_end": 2 * W, "mean": 1000.0})
    view = store.series("d/a", 10 * W)
    assert np.nanmax(view.mean) < 1000


def test_fine_buckets_for_recent_ranges_coarse_for_long_ones():
    cfg = DashboardConfig(fine_buckets=100, coarse_buckets=24, range_s=86400)
    store = FleetStore(cfg, W)
    feed(store, "d/a", range(1, 400))
    assert store.series("d/a", 100 * W).bucket_ms == W
    assert store.series("d/a", 86_400_000).bucket_ms == 3_600_000


def test_states_incidents_and_version_changes():
    store = FleetStore(DashboardConfig(quiet_windows=5), W)
    feed(store, "d/a", range(1, 100), score=lambda k: 9.0 if k == 50 else 1.0, version=lambda k: 1 if k < 60 else 2)
    feed(store, "d/b", range(1, 100))
    feed(store, "d/q", range(1, 10))  # silent since window 10
    store.ingest("score", {"sensor": "d/n", "status": "no_model", "window_end": 99 * W})
    prior = {"sensor": "d/p", "status": "prior", "score": 0.5, "threshold": 1.0, "window_end": 99 * W}
    store.ingest("score", prior | {"model_name": "_prior~p", "model_version": 1})
    opened = {
        "incident_id": "d/a@250000",
        "event": "opened",
        "sensor": "d/a",
        "start": 250_000,
        "end": None,
        "severity": 85,
        "learning": False,
        "event_window_end": 250_000,
    }
    store.ingest("incident", opened)
    assert store.overview()["states"] == {"incident": 1, "no_model": 1, "prior": 1, "quiet": 1, "ok": 1}
    p = store.sensor("d/p")
    assert p["state"] == "prior" and p["score"] == 0.5, "a prior's score is charted like a model's"
    assert store.overview()["open_by_severity"] == {"critical": 1}
    assert [r["sensor"] for r in store.rows()][:2] == ["d/a", "d/n"]
    store.ingest("incident", {**opened, "event": "closed", "end": 260_000, "closed_by": "recovery"})
    store.ingest("incident", opened)  # a replayed 'opened' (at least once) does not reopen it
    assert store.overview()["states"].get("incident") is None
    facts = store.sensor("d/a")
    assert [(i["incident_id"], i["open"]) for i in facts["incidents"]] == [("d/a@250000", False)]
    assert [v["model_version"] for v in facts["versions"]] == [1, 2]
    view = store.series("d/a", 100 * W)
    assert np.nanmax(view.score) == 9.0
    svg = render(view)
    assert svg.count('class="incident-span"') == 1 and svg.count('class="version-change"') == 2


def test_incidents_outside_the_range_are_not_drawn():
    store = FleetStore(DashboardConfig(), W)
    feed(store, "d/a", range(1, 1000))
    store.ingest(
        "incident",
        {
            "incident_id": "d/a@10000",
            "event": "closed",
            "sensor": "d/a",
            "start": 10_000,
            "end": 20_000,
            "severity": 50,
            "learning": False,
        },
    )
    assert store.series("d/a", 900_000).incidents == []
    assert len(store.series("d/a", 86_400_000).incidents) == 1
