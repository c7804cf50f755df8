"""The model repository, in TensorFlow Serving's layout, and its ``models.config``.

    <base>/<model>/<version>/saved_model.pb
                            /variables/...
                            /assets.extra/tf_serving_warmup_requests   (optional)
                            /assets.extra/sensorwatch_report.json      (training's report, and its plots)
    <base>/models.config                                               (model_config_list)

Publishing is atomic: a version is written under a hidden temporary name in the model's
folder and renamed into place, so a server polling the folder never sees half a version
(TF Serving, like our server, only considers all-digit folder names). ``models.config`` is
written by these functions only, never by hand, and also replaced atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format

from sensorwatch.serving.protos import pb

#: The training report in a version's assets.extra (training/export.py writes it; the dashboard reads it).
REPORT_FILE = "sensorwatch_report.json"

MODEL_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-~")


class RepositoryError(ValueError):
    """A bad model name, version or config; the message says which."""


def check_model_name(name: str) -> str:
    if not name or len(name) > 200 or not set(name) <= MODEL_NAME_CHARS or name.startswith("."):
        raise RepositoryError(f"model name {name!r} must be 1-200 of [A-Za-z0-9_.~-], not starting with '.'")
    return name


def versions_on_disk(model_dir: Path) -> list[int]:
    """All-digit child folders that hold a saved_model.pb, ascending."""
    if not model_dir.is_dir():
        return []
    out = []
    for child in model_dir.iterdir():
        if child.name.isdigit() and (child / "saved_model.pb").is_file():
            out.append(int(child.name))
    return sorted(out)


@dataclass
class ModelEntry:
    """One model in models.config."""

    name: str
    base_path: str
    policy: str = "latest"  # latest | all | specific
    versions: list[int] = field(default_factory=list)  # specific: these; latest: [num_versions]
    labels: dict[str, int] = field(default_factory=dict)

    def to_proto(self):
        c = pb.model_server_config_pb2.ModelConfig(
            name=self.name, base_path=self.base_path, model_platform="tensorflow"
        )
        if self.policy == "latest":
            c.model_version_policy.latest.num_versions = self.versions[0] if self.versions else 1
        elif self.policy == "all":
            c.model_version_policy.all.SetInParent()
        elif self.policy == "specific":
            c.model_version_policy.specific.versions.extend(self.versions)
        else:
            raise RepositoryError(f"unknown version policy {self.policy!r}")
        for label, v in self.labels.items():
            c.version_labels[label] = v
        return c

    @classmethod
    def from_proto(cls, c) -> ModelEntry:
        which = c.model_version_policy.WhichOneof("policy_choice")
        if which == "all":
            policy, versions = "all", []
        elif which == "specific":
            policy, versions = "specific", list(c.model_version_policy.specific.versions)
        else:
            n = c.model_version_policy.latest.num_versions if which == "latest" else 1
            policy, versions = "latest", [n or 1]
        return cls(c.name, c.base_path, policy, versions, dict(c.version_labels))


def parse_config_text(text: str) -> list[ModelEntry]:
    cfg = pb.model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as exc:
        raise RepositoryError(f"models.config is not a valid ModelServerConfig: {exc}") from None
    if cfg.WhichOneof("config") != "model_config_list":
        raise RepositoryError("models.config must hold a model_config_list")
    return [ModelEntry.from_proto(c) for c in cfg.model_config_list.config]


def config_text(entries: list[ModelEntry]) -> str:
    cfg = pb.model_server_config_pb2.ModelServerConfig()
    cfg.model_config_list.config.extend(e.to_proto() for e in sorted(entries, key=lambda e: e.name))
    return text_format.MessageToString(cfg)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ModelRepository:
    """A folder of models in TF Serving's layout, plus its models.config."""

    def __init__(self, base: str | Path, config_file: str | Path | None = None, serve_base: str | None = None):
        """``serve_base``: the path the *server* sees for ``base`` (e.g. ``/models`` in a container)."""
        self.base = Path(base).resolve()
        self.config_file = Path(config_file) if config_file else self.base / "models.config"
        self.serve_base = serve_base or str(self.base)

    def model_dir(self, name: str) -> Path:
        return self.base / check_model_name(name)

    def versions(self, name: str) -> list[int]:
        return versions_on_disk(self.model_dir(name))

    def models(self) -> list[str]:
        if not self.base.is_dir():
            return []
        return sorted(
            p.name for p in self.base.iterdir() if p.is_dir() and not p.name.startswith(".") and versions_on_disk(p)
        )

    def publish(self, name: str, write: Callable[[Path], None], version: int | None = None) -> int:
        """Write a new version with ``write(tmp_dir)`` and rename it into place; return its number.

        ``write`` must leave a SavedModel in the folder it is given (e.g. ``tf.saved_model.save``
        or ``shutil.copytree``). The default version is one more than the newest on disk.
        """
        model_dir = self.model_dir(name)
        model_dir.mkdir(parents=True, exist_ok=True)
        if version is None:
            existing = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()]
            version = max(existing, default=0) + 1
        if version < 0:
            raise RepositoryError(f"version must be a non-negative integer, got {version}")
        final = model_dir / str(version)
        if final.exists():
            raise RepositoryError(f"{name} version {version} already exists")
        tmp = model_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
        try:
            write(tmp)
            if not (tmp / "saved_model.pb").is_file():
                raise RepositoryError(f"publishing {name}/{version}: no saved_model.pb was written")
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return version

    def publish_dir(self, name: str, saved_model_dir: str | Path, version: int | None = None) -> int:
        return self.publish(name, lambda tmp: shutil.copytree(saved_model_dir, tmp), version)

    def read_config(self) -> list[ModelEntry]:
        if not self.config_file.is_file():
            return []
        return parse_config_text(self.config_file.read_text())

    def write_config(self, entries: list[ModelEntry]) -> None:
        _atomic_write(self.config_file, config_text(entries))

    def register(
        self, name: str, policy: str = "latest", versions: list[int] | None = None, labels: dict[str, int] | None = None
    ) -> ModelEntry:
        """Add or update one model in models.config, keeping the others."""
        entries = {e.name: e for e in self.read_config()}
        entry = ModelEntry(
            check_model_name(name), f"{self.serve_base.rstrip('/')}/{name}", policy, versions or [], labels or {}
        )
        entries[name] = entry
        self.write_config(list(entries.values()))
        return entry

    def served_version(self, name: str, entry: ModelEntry | None = None) -> int | None:
        """The version models.config has the server answer with when a request names none: the
        newest its policy keeps on disk. ``entry``: the model's models.config entry, when the
        caller has read the file already (one read for a thousand models, not a thousand)."""
        if entry is None:
            entry = next((e for e in self.read_config() if e.name == name), None)
        on_disk = self.versions(name)
        if entry is None or not on_disk:
            return None
        if entry.policy == "specific":
            kept = [v for v in entry.versions if v in on_disk]
            return max(kept) if kept else None
        return on_disk[-1]

    def _entries_with(self, name: str) -> dict[str, ModelEntry]:
        """models.config's entries by name; RepositoryError when ``name`` is not among them."""
        entries = {e.name: e for e in self.read_config()}
        if name not in entries:
            raise RepositoryError(f"model {name!r} is not in {self.config_file}")
        return entries

    def rollback(self, name: str, to: int | None = None) -> tuple[int | None, int]:
        """Pin ``name`` to version ``to`` (default: the newest version on disk below the one
        served now) in models.config, labelled ``stable``; ``(version served before, to)``.

        The server loads ``to`` while the current version keeps answering, then unloads the
        current one (its availability-first swap), so no request fails. The model stays pinned
        (policy ``specific``) until :meth:`unpin`: a retrain publishes, but does not serve.
        """
        self._entries_with(name)  # RepositoryError for a model models.config does not hold
        on_disk = self.versions(name)
        now = self.served_version(name)
        if to is None:
            older = [v for v in on_disk if now is None or v < now]
            if not older:
                raise RepositoryError(f"model {name!r} has no version older than {now} on disk (on disk: {on_disk})")
            to = older[-1]
        self.pin(name, to)
        return now, to

    def pin(self, name: str, version: int) -> ModelEntry:
        """Serve ``name``'s ``version`` alone, labelled ``stable`` (policy ``specific``): the
        model then keeps serving it whatever is published, until pinned again or unpinned."""
        entries = self._entries_with(name)
        on_disk = self.versions(name)
        if version not in on_disk:
            raise RepositoryError(f"model {name!r} has no version {version} on disk (on disk: {on_disk})")
        e = entries[name]
        labels = {k: v for k, v in e.labels.items() if v == version} | {"stable": version}
        entries[name] = ModelEntry(e.name, e.base_path, "specific", [version], labels)
        self.write_config(list(entries.values()))
        return entries[name]

    def unpin(self, name: str) -> ModelEntry:
        """Serve ``name``'s newest version again (policy ``latest``, labels cleared)."""
        entries = self._entries_with(name)
        e = entries[name]
        entries[name] = ModelEntry(e.name, e.base_path, "latest", [1], {})
        self.write_config(list(entries.values()))
        return entries[name]

    def register_many(self, names: list[str], policy: str = "latest") -> None:
        """Add models to models.config in one write; models already there keep their entry."""
        entries = {e.name: e for e in self.read_config()}
        for name in names:
            if name not in entries:
                entries[name] = ModelEntry(
                    check_model_name(name), f"{self.serve_base.rstrip('/')}/{name}", policy, [], {}
                )
        self.write_config(list(entries.values()))


def read_report(version_dir: Path) -> dict | None:
    """The training report of a version folder, or None when training wrote none."""
    f = Path(version_dir) / "assets.extra" / REPORT_FILE
    return json.loads(f.read_text()) if f.is_file() else None


def incident_seeds(model_base_path: Path, by_version: bool = False) -> dict:
    """Sensor -> its model's incident seed (count, mean, variance of its validation scores),
    from the reports of every version in the repository: what the job's incident stage starts
    each sensor's calibration from, for a reference run of the same rules. A fleet prior's is
    under ``*/<tag>`` (its report's one entry). ``by_version``: keyed ``(sensor, version)``, for
    a run in which versions changed (each version has its own seed)."""
    out: dict = {}
    versions = [v for v in Path(model_base_path).glob("*/*/") if v.name.isdigit()]
    for version in sorted(versions, key=lambda v: (v.parent.name, int(v.name))):  # by sensor: the newest wins
        for sensor, r in (read_report(version) or {"sensors": {}})["sensors"].items():
            out[(sensor, int(version.name)) if by_version else sensor] = report_seed(r)
    return out


def report_seed(entry: dict) -> tuple[float, float, float]:
    """(count, mean, variance) of one sensor's incident seed in a version's report (its entry
    under ``sensors``); NaN where the report has none."""
    seed = entry.get("incident_seed") or {}
    nan = float("nan")
    return float(seed.get("count", nan)), float(seed.get("mean", nan)), float(seed.get("variance", nan))
