"""The dashboard over a real broker: it reads the output topics, serves the pages and the
live events, and counts (never hides) a record it cannot read."""

from __future__ import annotations

import json
import time

import pytest
import requests

from sensorwatch.core.feedback import label_record
from sensorwatch.core.kafka import producer
from sensorwatch.dashboard.app import Dashboard

pytestmark = pytest.mark.integration
W = 5000


def publish(settings, n_sensors: int = 20, windows: int = 60) -> int:
    t = settings.kafka.topics
    now = int(time.time() * 1000) // W * W
    p = producer(settings.kafka)
    for k in range(windows):
        end = now - (windows - k) * W
        for i in range(n_sensors):
            sensor = f"dev-{i:04d}/temp"
            p.send(t.aggregates, json.dumps({"sensor": sensor, "window_end": end, "mean": 20.0 + k % 3}).encode())
            rec = {
                "sensor": sensor,
                "status": "scored",
                "window_end": end,
                "score": 1.0,
                "threshold": 3.0,
                "model_name": "packed-000",
                "model_version": 1,
                "granularity": "sensor",
            }
            p.send(t.scores, json.dumps(rec).encode())
    opened = {
        "incident_id": f"dev-0003/temp@{now - 10 * W}",
        "event": "opened",
        "sensor": "dev-0003/temp",
        "start": now - 10 * W,
        "end": None,
        "severity": 72,
        "learning": False,
        "event_window_end": now - 10 * W,
    }
    p.send(t.incidents, json.dumps(opened).encode())
    # an operator's verdict on it, and the simulator's ground truth, which shares the labels topic
    p.send(t.labels, json.dumps(label_record(opened["incident_id"], "expected", note="pump test")).encode())
    p.send(t.labels, json.dumps({"sensor": "dev-0003/temp", "kind": "spike", "start": 0, "end": 1}).encode())
    p.send(t.scores, b"{not json")
    p.flush()
    p.close()
    return n_sensors


def test_the_dashboard_reads_the_topics_and_serves_them_live(settings):
    settings.dashboard.port = 0
    n = publish(settings)
    with Dashboard(settings) as ui:
        assert ui.feed.caught_up.wait(60), ui.feed.last_error
        ov = requests.get(f"{ui.url}/api/overview", timeout=10).json()
        assert ov["sensors"] == n
        assert ov["states"] == {"incident": 1, "ok": n - 1}
        assert ov["open_by_severity"] == {"warning": 1}
        assert ov["feed"]["unreadable"] == 1 and "JSONDecodeError" in ov["feed"]["last_error"]
        page = requests.get(f"{ui.url}/sensor/dev-0003/temp?range=15m", timeout=10)
        assert page.status_code == 200 and page.text.count('class="incident-span"') == 1
        assert '<td class="verdict">expected (' in page.text and "pump test" in page.text
        facts = requests.get(f"{ui.url}/api/sensor/dev-0003/temp", timeout=10).json()
        assert facts["incidents"][0]["verdict"]["label"] == "expected" and len(ui.store.verdicts) == 1
        fleet = requests.get(f"{ui.url}/", timeout=10).text
        assert "1 unreadable records" in fleet and fleet.count("<tr class=") == n
        assert requests.get(f"{ui.url}/sensor/dev-9999/x", timeout=10).status_code == 404
        assert requests.get(f"{ui.url}/chart/dev-0003/temp?range=3d", timeout=10).status_code == 400
        # the live events: the overview comes at once, and again when a record arrives
        with requests.get(f"{ui.url}/events", stream=True, timeout=30) as es:
            lines = es.iter_lines(decode_unicode=True)
            first = next(json.loads(line[5:]) for line in lines if line.startswith("data:"))
            p = producer(settings.kafka)
            another = {
                "incident_id": f"dev-0004/temp@{ov['latest_ts']}",
                "event": "opened",
                "sensor": "dev-0004/temp",
                "start": ov["latest_ts"],
                "severity": 90,
                "learning": False,
            }
            p.send(settings.kafka.topics.incidents, json.dumps(another).encode())
            p.flush()
            p.close()
            second = next(json.loads(line[5:]) for line in lines if line.startswith("data:"))
        assert second["records"] == first["records"] + 1
        assert second["open_by_severity"] == {"warning": 1, "critical": 1}
