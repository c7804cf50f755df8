"""Where alerts go: Alertmanager's API v2 or a generic JSON webhook, one HTTP call per batch.

Both targets take the same alerts (:mod:`sensorwatch.alerting.alerts`) and answer the same
way: accepted, *retry* (the target is down, overloaded or timed out: the batch waits and goes
again), or *rejected* (a 4xx other than 429: the batch itself is wrong, and sending it again
cannot help; the forwarder dead-letters it with the target's reason).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import requests

from sensorwatch.alerting.alerts import iso
from sensorwatch.core.config import AlertingConfig

Outcome = Literal["accepted", "retry", "rejected"]


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    reason: str = ""


class Target:
    """One HTTP endpoint that takes a batch of alerts; a session (keep-alive) per target."""

    def __init__(self, cfg: AlertingConfig):
        self.cfg = cfg
        self.session = requests.Session()
        base = cfg.url.rstrip("/")
        self.url = f"{base}/api/v2/alerts" if cfg.target == "alertmanager" else cfg.url

    def body(self, alerts: list[dict]) -> object:
        """Alertmanager takes the list itself; the webhook an envelope around it, each alert with
        its ``status`` (firing, or resolved once its ``endsAt`` passed), as Alertmanager's own
        webhook notifications carry it."""
        if self.cfg.target == "alertmanager":
            return alerts
        now = iso(time.time() * 1000)
        marked = [{**a, "status": "resolved" if a["endsAt"] <= now else "firing"} for a in alerts]
        return {"version": "sensorwatch/1", "alerts": marked}

    def post(self, alerts: list[dict]) -> Delivery:
        try:
            r = self.session.post(self.url, json=self.body(alerts), timeout=self.cfg.timeout_s)
        except requests.RequestException as exc:  # refused, reset, timed out: the target is away
            return Delivery("retry", f"{type(exc).__name__}: {exc}")
        if r.status_code < 300:
            return Delivery("accepted")
        reason = f"HTTP {r.status_code}: {r.text[:500]}"
        return Delivery("retry" if r.status_code == 429 or r.status_code >= 500 else "rejected", reason)

    def close(self) -> None:
        self.session.close()
