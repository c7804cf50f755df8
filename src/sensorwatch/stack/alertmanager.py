"""A real Prometheus Alertmanager on loopback (Debian's ``prometheus-alertmanager``).

Its configuration, data (silences and the notification log survive a restart; alerts
themselves do not, which is why the forwarder posts open incidents again) and log live under
one work folder. Used by the tests and by anyone who wants a local Alertmanager in front of
``sensorwatch alert``; in docker-compose the official ``prom/alertmanager`` image runs instead.
"""

from __future__ import annotations

from pathlib import Path

import requests

from sensorwatch.stack.service import LoopbackService


def webhook_config(url: str, group_wait: str = "1s", group_interval: str = "1s") -> dict:
    """A configuration that routes every alert, one group per incident, to one webhook
    (``send_resolved``), notifying within seconds: what a test or a local try-out wants."""
    return {
        "route": {
            "receiver": "hook",
            "group_by": ["incident_id"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": "24h",
        },
        "receivers": [{"name": "hook", "webhook_configs": [{"url": url, "send_resolved": True}]}],
    }


class AlertmanagerProcess(LoopbackService):
    """``prometheus-alertmanager`` with a configuration (a dict)."""

    program = package = "prometheus-alertmanager"

    def flags(self, config_file: Path) -> list[str]:
        return [
            f"--config.file={config_file}",
            f"--storage.path={self.work / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # a single instance: no gossip port
            "--log.level=warn",
        ]

    def alerts(self, **filters: str) -> list[dict]:
        """The alerts it holds now (API v2 ``GET /alerts``): firing (active, silenced or inhibited)."""
        r = requests.get(f"{self.url}/api/v2/alerts", params=filters, timeout=10)
        r.raise_for_status()
        return r.json()
