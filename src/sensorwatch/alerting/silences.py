"""Operators' maintenance windows: a per-sensor silence, set from the command line.

A silence is a record on the silences topic, keyed by its sensor pattern (a shell-style
pattern: ``dev-7/*`` silences a whole device): ``{"sensor", "until", "comment", "by"}``, the
latest record of a key being the one in force (``until`` 0 lifts it). The topic is the store,
so every forwarder sees the same silences, whichever target it posts to, and a restart loses
none. A silenced incident is not posted while the silence lasts; one still open when it ends
fires then.

>>> s = Silences()
>>> s.apply({"sensor": "dev-7/*", "until": 5_000, "comment": "pump swap", "by": "ana"})
>>> s.silenced("dev-7/temp", now_ms=1_000), s.silenced("dev-7/temp", now_ms=6_000), s.silenced("dev-8/x", 1_000)
(True, False, False)
"""

from __future__ import annotations

import fnmatch
import getpass
import time
from dataclasses import dataclass, field

from sensorwatch.core.config import KafkaConfig


@dataclass
class Silences:
    """The silences in force, by sensor pattern."""

    until: dict[str, int] = field(default_factory=dict)

    def apply(self, rec: dict) -> None:
        """Take one silences-topic record (a later record of the same pattern replaces it)."""
        pattern, until = str(rec["sensor"]), int(rec.get("until") or 0)
        if until > 0:
            self.until[pattern] = until
        else:
            self.until.pop(pattern, None)

    def silenced(self, sensor: str, now_ms: float) -> bool:
        return any(u > now_ms and fnmatch.fnmatchcase(sensor, p) for p, u in self.until.items())

    def active(self, now_ms: float) -> dict[str, int]:
        return {p: u for p, u in sorted(self.until.items()) if u > now_ms}


def silence_record(sensor: str, duration_s: float, comment: str = "", now_ms: float | None = None) -> dict:
    """The record that silences ``sensor`` (a pattern) for ``duration_s`` seconds (0: lift it)."""
    now = time.time() * 1000 if now_ms is None else now_ms
    return {
        "sensor": sensor,
        "until": int(now + duration_s * 1000) if duration_s > 0 else 0,
        "comment": comment,
        "by": getpass.getuser(),
        "set_at": int(now),
    }


def publish_silence(cfg: KafkaConfig, rec: dict) -> None:
    """Write a silence record to the silences topic and wait for the broker's ack."""
    from sensorwatch.core.kafka import send_one

    send_one(cfg, cfg.topics.silences, rec, key=rec["sensor"])
