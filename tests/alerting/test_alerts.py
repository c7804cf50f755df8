"""The alert of an incident record: labels, filters and times (no broker, no Alertmanager)."""

from __future__ import annotations

from sensorwatch.alerting.alerts import alert_of, labels_of, wanted


def _rec(**kw):
    rec = dict(
        incident_id="pump-3@600000",
        event="opened",
        sensor="pump-3",
        device="pump-3",
        start=600_000,
        end=None,
        severity=85,
        peak_score=7.0,
        threshold=1.5,
        model_name="packed-dev-002",
        model_version=4,
        learning=False,
        explanation={
            "tags": [{"tag": "power", "share": 0.2}, {"tag": "flow", "share": 0.7}, {"tag": "speed", "share": 0.1}]
        },
    )
    return {**rec, **kw}


def test_a_device_alert_names_its_top_two_tags_and_its_band():
    labels = labels_of(_rec())
    assert labels["tag"] == "flow,power" and labels["severity"] == "critical" and labels["device"] == "pump-3"
    assert labels["incident_id"] == "pump-3@600000" and labels["model_version"] == "4"
    a = alert_of(_rec(), now_ms=700_000, valid_ms=60_000, dashboard_url="http://ui:8050/")
    assert a["annotations"]["dashboard"] == "http://ui:8050/sensor/pump-3" == a["generatorURL"]
    assert "flow 70%" in a["annotations"]["summary"]


def test_a_closed_incident_ends_at_its_last_window_or_now_if_that_is_ahead():
    now = 700_000
    past = alert_of(_rec(event="closed", end=650_000), now_ms=now, valid_ms=60_000, dashboard_url="")
    ahead = alert_of(_rec(event="closed", end=900_000), now_ms=now, valid_ms=60_000, dashboard_url="")
    assert past["endsAt"].endswith("00:10:50.000Z") and ahead["endsAt"].endswith("00:11:40.000Z")
    assert "generatorURL" not in past


def test_filters_drop_learning_weak_and_unmatched_incidents():
    assert wanted(_rec(), 40, {"device": "pump-*"})
    assert not wanted(_rec(learning=True), 0, {})
    assert not wanted(_rec(severity=45), 60, {})
    assert not wanted(_rec(), 0, {"device": "dev-*"})
    assert not wanted(_rec(), 0, {"no_such_label": "*x"})
