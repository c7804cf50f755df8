"""The models page's facts: what the repository holds, what the server says of it.

The repository (``serving.model_base_path``, TF Serving's layout) gives each model's versions
and, in each version's ``assets.extra/``, the training report and plots that training wrote.
The model server gives each version's state through ModelService/GetModelStatus, the call
TF Serving answers too. A server that cannot be reached is shown as such on the page, with
gRPC's reason; the repository is still listed.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorwatch.core.config import ServingConfig
from sensorwatch.serving.repository import ModelRepository, RepositoryError, check_model_name, read_report

log = logging.getLogger(__name__)

#: Files of assets.extra the dashboard serves: the report and plots, nothing else.
SERVABLE = re.compile(r"[A-Za-z0-9_.-]+\.(png|json|svg)")


@dataclass
class VersionInfo:
    version: int
    report: dict[str, Any] | None
    plots: list[str] = field(default_factory=list)
    state: str = "unknown"  # the server's: START, LOADING, AVAILABLE, UNLOADING, END; or unknown
    error: str = ""


def _summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The few figures of a training report worth a row: kind, when, sensors, thresholds."""
    if report is None:
        return None
    sensors = report.get("sensors") or report.get("devices") or {}
    thresholds = [v.get("threshold") for v in sensors.values() if isinstance(v, dict) and v.get("threshold")]
    return {
        "kind": report.get("kind"),
        "layout": report.get("layout"),
        "created_ms": report.get("created_ms"),
        "wall_s": report.get("wall_s"),
        "sensors": sorted(sensors),
        "threshold_min": min(thresholds) if thresholds else None,
        "threshold_max": max(thresholds) if thresholds else None,
    }


class ModelCatalogue:
    """The repository and the server's view of it, read when a page asks."""

    def __init__(self, serving: ServingConfig):
        self.serving = serving
        self.repo = ModelRepository(serving.model_base_path, serving.config_file)
        self._scoring: Any = None
        self._lock = threading.Lock()

    def names(self, match: str = "") -> list[str]:
        return [n for n in self.repo.models() if match in n]

    def _client(self):
        """One gRPC client for every page (made at the first models page; channels are
        thread-safe and reconnect by themselves), closed with the app (:meth:`close`)."""
        from sensorwatch.serving.client import ScoringClient

        with self._lock:
            if self._scoring is None:
                self._scoring = ScoringClient(self.serving, attempts=0)
            return self._scoring

    def close(self) -> None:
        with self._lock:
            if self._scoring is not None:
                self._scoring.close()
                self._scoring = None

    def server_states(self, name: str) -> tuple[dict[int, tuple[str, str]], str]:
        """{version: (state, error message)} from the server, and why not when it cannot say."""
        import grpc

        from sensorwatch.serving.protos import pb

        try:
            states = self._client().status(name)
        except grpc.RpcError as exc:
            return {}, f"{exc.code().name}: {exc.details()}"
        names = pb.get_model_status_pb2.ModelVersionStatus.State
        return {int(s.version): (names.Name(s.state), s.status.error_message) for s in states}, ""

    def versions(self, name: str, with_server: bool = True) -> tuple[list[VersionInfo], str]:
        states, why = self.server_states(name) if with_server else ({}, "")
        out = []
        for v in sorted(self.repo.versions(name), reverse=True):
            extra = self.repo.model_dir(name) / str(v) / "assets.extra"
            plots = sorted(p.name for p in extra.glob("*.png")) if extra.is_dir() else []
            state, err = states.get(v, ("not on server" if states else "unknown", ""))
            out.append(VersionInfo(v, _summary(read_report(extra.parent)), plots, state, err))
        return out, why

    def asset(self, name: str, version: int, file: str) -> Path:
        """A report or plot of a version; ``RepositoryError`` for anything else."""
        check_model_name(name)
        if not SERVABLE.fullmatch(file):
            raise RepositoryError(f"{file!r} is not a report or plot")
        path = self.repo.model_dir(name) / str(int(version)) / "assets.extra" / file
        if not path.is_file():
            raise RepositoryError(f"{name} v{version} has no {file}")
        return path
