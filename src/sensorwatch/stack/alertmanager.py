"""A real Prometheus Alertmanager on loopback (Debian's ``prometheus-alertmanager``).

Its configuration, data (silences and the notification log survive a restart; alerts
themselves do not, which is why the forwarder posts open incidents again) and log live under
one work folder. Used by the tests and by anyone who wants a local Alertmanager in front of
``sensorwatch alert``; in docker-compose the official ``prom/alertmanager`` image runs instead.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import requests

from sensorwatch.core.optional import system_program

PROGRAM, PACKAGE = "prometheus-alertmanager", "prometheus-alertmanager"


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


class AlertmanagerProcess:
    """``prometheus-alertmanager`` with a config (a dict, written as YAML-compatible JSON)."""

    def __init__(self, work_dir: Path, port: int, config: dict):
        self.work = Path(work_dir)
        self.port, self.config = port, config
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0) -> AlertmanagerProcess:
        program = system_program(PROGRAM, PACKAGE)
        self.work.mkdir(parents=True, exist_ok=True)
        cfg = self.work / "alertmanager.yml"
        cfg.write_text(json.dumps(self.config, indent=2))  # JSON is YAML
        log = open(self.work / "alertmanager.log", "ab")
        self.proc = subprocess.Popen(
            [
                program,
                f"--config.file={cfg}",
                f"--storage.path={self.work / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # a single instance: no gossip port
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited with {self.proc.returncode}; see {self.work}/alertmanager.log")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"alertmanager not ready on {self.url} after {timeout_s} s")

    def alerts(self, **filters: str) -> list[dict]:
        """The alerts it holds now (API v2 ``GET /alerts``): firing (active, silenced or inhibited)."""
        r = requests.get(f"{self.url}/api/v2/alerts", params=filters, timeout=10)
        r.raise_for_status()
        return r.json()

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (it writes its silences and notification log), SIGKILL if it will not go."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
