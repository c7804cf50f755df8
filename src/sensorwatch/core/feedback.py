"""Operators' verdicts on incidents, the one record they are written as, and a bounded store of them.

An operator who knows an incident was a false alarm (or a real fault, or expected: a test, a
maintenance run) says so with ``sensorwatch label <incident-id> <verdict>``. The verdict is a
record on the labels topic, keyed by the incident id, the latest record of an incident being
the one that holds: ``{"type": "incident_label", "incident_id", "sensor", "start", "label",
"note", "by", "ts"}``. The ``type`` tells it from the simulator's ground truth on the same
topic. The dashboard shows verdicts beside the incidents, and the alert forwarder adds them to
the alerts it posts.

>>> rec = label_record("dev-7/temp@1700000000000", "false-positive", note="valve test", by="ana", now_ms=5)
>>> rec["sensor"], rec["start"], is_label_record(rec), is_label_record({"sensor": "x", "kind": "spike"})
('dev-7/temp', 1700000000000, True, False)
>>> labels = IncidentLabels(max_incidents=2)
>>> for r in (rec, label_record("a/b@1", "expected", now_ms=6), label_record("c/d@2", "true-positive", now_ms=7)):
...     labels.apply(r)
>>> labels.get(rec["incident_id"]) is None, labels.get("c/d@2")["label"]
(True, 'true-positive')
"""

from __future__ import annotations

import getpass
import re
import time
from collections import OrderedDict
from typing import Any

#: The verdicts an operator can give an incident.
VERDICTS = ("false-positive", "true-positive", "expected")
#: The ``type`` of a verdict record on the labels topic.
RECORD_TYPE = "incident_label"
_INCIDENT_ID = re.compile(r"(?P<sensor>[A-Za-z0-9][A-Za-z0-9_./-]*)@(?P<start>\d+)")


def label_record(
    incident_id: str, label: str, note: str = "", by: str | None = None, now_ms: float | None = None
) -> dict[str, Any]:
    """The record of one verdict; ``ValueError`` naming what is wrong with the id or the verdict."""
    m = _INCIDENT_ID.fullmatch(incident_id)
    if m is None:
        raise ValueError(f"{incident_id!r} is not an incident id: sensor@start, as `sensorwatch tail` shows it")
    if label not in VERDICTS:
        raise ValueError(f"{label!r} is not a verdict: one of {', '.join(VERDICTS)}")
    return {
        "type": RECORD_TYPE,
        "incident_id": incident_id,
        "sensor": m["sensor"],
        "start": int(m["start"]),
        "label": label,
        "note": note,
        "by": by or getpass.getuser(),
        "ts": int(time.time() * 1000 if now_ms is None else now_ms),
    }


def is_label_record(rec: Any) -> bool:
    return isinstance(rec, dict) and rec.get("type") == RECORD_TYPE and "incident_id" in rec


class IncidentLabels:
    """The latest verdict of each incident, the ``max_incidents`` most recently labelled kept."""

    def __init__(self, max_incidents: int = 100_000):
        self.max_incidents = max_incidents
        self._by_id: OrderedDict[str, dict] = OrderedDict()

    def apply(self, rec: dict) -> None:
        iid = str(rec["incident_id"])
        self._by_id[iid] = rec
        self._by_id.move_to_end(iid)
        while len(self._by_id) > self.max_incidents:
            self._by_id.popitem(last=False)

    def get(self, incident_id: str) -> dict | None:
        return self._by_id.get(incident_id)

    def __len__(self) -> int:
        return len(self._by_id)


def verdict_phrase(rec: dict | None) -> str:
    """``false-positive (ana: valve test)``; empty without a verdict."""
    if not rec:
        return ""
    who = f"{rec.get('by')}: {rec['note']}" if rec.get("note") else str(rec.get("by") or "")
    return f"{rec['label']} ({who})" if who else str(rec["label"])
