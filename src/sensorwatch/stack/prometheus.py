"""A real Prometheus server on loopback (Debian's ``prometheus``), scraping given targets.

For the tests and for a local look at the metrics: the job's (Flink's Prometheus reporter),
the model server's (TF Serving's names) and the alert forwarder's. In docker-compose the
official ``prom/prometheus`` image runs instead.
"""

from __future__ import annotations

from pathlib import Path

import requests

from sensorwatch.stack.service import LoopbackService


def scrape_config(jobs: dict[str, list[str]], interval: str = "15s") -> dict:
    """A configuration scraping each job's ``host:port`` targets every ``interval``."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": name, "static_configs": [{"targets": t}]} for name, t in jobs.items()],
    }


class PrometheusProcess(LoopbackService):
    """``prometheus`` with a configuration (a dict)."""

    program = package = "prometheus"

    def flags(self, config_file: Path) -> list[str]:
        return [
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.work / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

    def query(self, promql: str) -> list[dict]:
        """An instant query's result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        r = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        r.raise_for_status()
        body = r.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        return body["data"]["result"]

    def targets_up(self) -> dict[str, bool]:
        """Each scraped target's health: ``job/instance`` -> up."""
        r = requests.get(f"{self.url}/api/v1/targets", timeout=10)
        r.raise_for_status()
        return {
            f"{t['labels']['job']}/{t['labels']['instance']}": t["health"] == "up"
            for t in r.json()["data"]["activeTargets"]
        }
