"""One incident record -> one Alertmanager alert: the labels, annotations and times, defined once.

An incident *opened* is a firing alert and the same incident *closed* is that alert with its
``endsAt``, so it resolves. The alert's identity in Alertmanager is its label set, which holds
the incident id: a record delivered twice is the same alert twice, never a second alert. The
labels are always those of the *opened* record: the closed one can carry a higher severity (the
highest so far) or other top tags, and labels that changed would make it a second alert, leaving
the first firing until it timed out; what changed goes into the annotations.

>>> rec = {"incident_id": "dev-1/temp@60000", "event": "opened", "sensor": "dev-1/temp", "device": "dev-1",
...        "start": 60_000, "end": None, "severity": 72, "peak_score": 9.5, "threshold": 2.0,
...        "model_name": "dev-1_temp", "model_version": 3, "learning": False,
...        "explanation": {"feature": "mean", "kind_hint": "level_shift", "tags": None}}
>>> a = alert_of(rec, now_ms=120_000, valid_ms=240_000, dashboard_url="http://ui")
>>> a["labels"]["severity"], a["labels"]["tag"], a["startsAt"], a["endsAt"]
('warning', 'temp', '1970-01-01T00:01:00.000Z', '1970-01-01T00:06:00.000Z')
>>> worse = {**rec, "event": "closed", "end": 90_000, "severity": 95}
>>> closed = alert_of(worse, now_ms=120_000, valid_ms=240_000, dashboard_url="", opened=rec)
>>> closed["endsAt"], closed["labels"] == a["labels"], closed["annotations"]["summary"][:25]
('1970-01-01T00:01:30.000Z', True, 'dev-1/temp: severity 95, ')
"""

from __future__ import annotations

import fnmatch
import json
import time
from typing import Any
from urllib.parse import quote

from sensorwatch.core.feedback import verdict_phrase
from sensorwatch.core.incidents import explanation_phrase, severity_band

#: The ``alertname`` of every sensorwatch alert.
ALERT_NAME = "SensorwatchIncident"


def iso(ms: float) -> str:
    """RFC 3339 in UTC with milliseconds, as Alertmanager's API takes times."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{int(ms) % 1000:03d}Z"


def tag_label(rec: dict) -> str:
    """A sensor's tag, or a device model's two top tags (``flow,pressure``): what to look at."""
    tags = (rec.get("explanation") or {}).get("tags")
    if tags:
        return ",".join(t["tag"] for t in sorted(tags, key=lambda t: -t["share"])[:2])
    sensor = str(rec.get("sensor", ""))
    return sensor.split("/", 1)[1] if "/" in sensor else ""


def labels_of(rec: dict) -> dict[str, str]:
    """The alert's labels: its identity and what routes and groups it."""
    return {
        "alertname": ALERT_NAME,
        "incident_id": str(rec["incident_id"]),
        "sensor": str(rec["sensor"]),
        "device": str(rec.get("device") or str(rec["sensor"]).split("/", 1)[0]),
        "tag": tag_label(rec),
        "severity": severity_band(rec.get("severity") or 0),
        "model": str(rec.get("model_name")),
        "model_version": str(rec.get("model_version")),
    }


def summary(rec: dict) -> str:
    return f"{rec['sensor']}: severity {rec.get('severity')}, {explanation_phrase(rec.get('explanation'))}"


def alert_of(
    rec: dict,
    *,
    now_ms: float,
    valid_ms: float,
    dashboard_url: str,
    opened: dict | None = None,
    verdict: dict | None = None,
) -> dict[str, Any]:
    """The Alertmanager v2 alert (``postableAlert``) of an incident record; ``opened``: the
    incident's opened record, whose labels the alert keeps (``rec``'s own when not given);
    ``verdict``: an operator's verdict on it, as the annotation ``verdict``.

    An open incident's alert is valid for ``valid_ms`` from ``now_ms`` and is posted again
    before that runs out (Prometheus does the same for its firing alerts); a closed one ends at
    its last anomalous window, or now if that is still ahead (replayed event time)."""
    link = f"{dashboard_url.rstrip('/')}/sensor/{quote(str(rec['sensor']), safe='')}" if dashboard_url else ""
    alert: dict[str, Any] = {
        "labels": labels_of(opened or rec),
        "annotations": {
            "summary": summary(rec),
            "score": f"{rec.get('peak_score')}",
            "threshold": f"{rec.get('threshold')}",
            "explanation": json.dumps(rec.get("explanation") or {}, sort_keys=True),
            "dashboard": link,
        },
        "startsAt": iso(rec["start"]),
    }
    if verdict:
        alert["annotations"]["verdict"] = verdict_phrase(verdict)
    if link:
        alert["generatorURL"] = link
    if rec["event"] == "closed":
        alert["endsAt"] = iso(min(rec.get("end") or now_ms, now_ms))
    else:
        alert["endsAt"] = iso(max(now_ms, rec["start"]) + valid_ms)
    return alert


def wanted(rec: dict, min_severity: int, match: dict[str, str]) -> bool:
    """Whether an incident is forwarded at all: not a learning one, severe enough, and every
    label filter (a shell-style pattern) matching."""
    if rec.get("learning") or (rec.get("severity") or 0) < min_severity:
        return False
    labels = labels_of(rec)
    return all(fnmatch.fnmatchcase(labels.get(k, ""), pattern) for k, pattern in match.items())
