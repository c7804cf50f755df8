"""Which model versions are loaded, with TensorFlow Serving's semantics.

* Version policies: ``latest`` (the newest N on disk), ``all``, ``specific`` (listed ones).
* Version labels (``stable``, ``canary``) map to versions and must point at a loaded one.
* A poll loop rescans each model's base path (and, optionally, models.config). A new
  version is loaded and warmed up while the old ones keep answering; only then is the
  served set swapped, and the old version is dropped. Requests already running hold a
  reference to the version they resolved, so none fails during a roll-forward.
* Models load only as SavedModels (``tf.saved_model.load``): nothing in the repository
  is ever unpickled.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow as tf

from sensorwatch.serving.protos import pb
from sensorwatch.serving.repository import ModelEntry, parse_config_text, versions_on_disk

log = logging.getLogger("sensorwatch.serving")

State = pb.get_model_status_pb2.ModelVersionStatus.State


class ServingError(Exception):
    """An error with the gRPC status code TF Serving gives for it."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code  # a grpc.StatusCode name: NOT_FOUND, INVALID_ARGUMENT, ...


@dataclass
class LoadedVersion:
    name: str
    version: int
    path: Path
    module: Any
    signatures: dict[str, Any]
    signature_defs: Any  # map<string, SignatureDef> proto, from saved_model.pb
    loaded_at: float = field(default_factory=time.time)


@dataclass
class _Model:
    entry: ModelEntry
    versions: dict[int, LoadedVersion] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    states: dict[int, int] = field(default_factory=dict)


def _signature_defs(path: Path):
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    for mg in sm.meta_graphs:
        if "serve" in mg.meta_info_def.tags:
            return mg.signature_def
    return sm.meta_graphs[0].signature_def


def _warmup(lv: LoadedVersion, run_predict) -> int:
    """Replay assets.extra/tf_serving_warmup_requests (PredictionLog TFRecords), as TF Serving does."""
    f = lv.path / "assets.extra" / "tf_serving_warmup_requests"
    if not f.is_file():
        return 0
    from tensorflow_serving.apis import prediction_log_pb2

    n = 0
    for raw in tf.data.TFRecordDataset(str(f)).as_numpy_iterator():
        plog = prediction_log_pb2.PredictionLog()
        plog.ParseFromString(raw)
        if plog.WhichOneof("log_type") == "predict_log":
            run_predict(lv, plog.predict_log.request)
            n += 1
    return n


class ModelManager:
    """Keeps the served versions in line with models.config and the files on disk."""

    def __init__(
        self,
        entries: list[ModelEntry],
        config_file: Path | None = None,
        poll_wait_s: float = 2.0,
        config_poll_wait_s: float = 0.0,
        run_predict=None,
        on_load=None,
    ):
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._models: dict[str, _Model] = {}
        self.config_file = config_file
        self._config_text = config_file.read_text() if config_file and config_file.is_file() else None
        self.poll_wait_s = poll_wait_s
        self.config_poll_wait_s = config_poll_wait_s
        self._run_predict = run_predict
        #: ``on_load(path, ok, seconds)`` after every load attempt (the server's metrics)
        self._on_load = on_load
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.set_config(entries)

    # ------------------------------------------------------------------ config
    def set_config(self, entries: list[ModelEntry]) -> None:
        """Adopt a new model list (HandleReloadConfigRequest, or models.config changed) and sync."""
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise ServingError("INVALID_ARGUMENT", f"duplicate model names in config: {sorted(names)}")
        with self._lock:
            new = {}
            for e in entries:
                # the same object, its entry replaced: a sync loading a version of it right now
                # files what it loads where lookups read (a new object would leave that load on
                # the old one, unserved while its state said AVAILABLE, and loaded a second time)
                m = self._models.get(e.name) or _Model(e)
                m.entry = e
                new[e.name] = m
            for name in set(self._models) - set(new):
                log.info("model %s removed from config: unloading", name)
            self._models = new
        self.sync()

    def _desired(self, entry: ModelEntry) -> list[int]:
        on_disk = versions_on_disk(Path(entry.base_path))
        if entry.policy == "all":
            return on_disk
        if entry.policy == "specific":
            return [v for v in entry.versions if v in on_disk]
        n = entry.versions[0] if entry.versions else 1
        return on_disk[-n:]

    def sync(self) -> None:
        """Load what the policies want and is not loaded; then unload what they no longer want."""
        with self._sync_lock:
            with self._lock:
                models = list(self._models.values())
            for m in models:
                entry = m.entry
                want = self._desired(entry)
                for v in want:
                    if v in m.versions or v in m.errors:
                        continue
                    m.states[v] = State.LOADING
                    path, t0 = Path(m.entry.base_path) / str(v), time.monotonic()
                    try:
                        lv = self._load(m.entry.name, v, path)
                    except Exception as exc:  # noqa: BLE001 - a broken version must not take the server down; logged and reported
                        log.error("loading %s version %d failed: %s", m.entry.name, v, exc)
                        m.errors[v] = f"{type(exc).__name__}: {exc}"
                        m.states[v] = State.END
                        self._loaded(path, False, t0)
                        continue
                    self._loaded(path, True, t0)
                    with self._lock:
                        m.versions = {**m.versions, v: lv}  # swap: readers see old or new dict, whole
                        m.states[v] = State.AVAILABLE
                    log.info("model %s version %d available", m.entry.name, v)
                with self._lock:
                    if m.entry is not entry:
                        # a config adopted while this pass loaded (a rollback's pin, say) must
                        # not lose the version it asks for to the list read before it
                        want = self._desired(m.entry)
                    gone = [v for v in m.versions if v not in want]
                    # availability first: while no wanted version could load, keep the old one
                    serving_wanted = any(v in m.versions for v in want)
                    if gone and (serving_wanted or not want):
                        for v in gone:
                            m.states[v] = State.END
                        m.versions = {v: lv for v, lv in m.versions.items() if v in want}
                        for v in gone:
                            log.info("model %s version %d unloaded", m.entry.name, v)

    def _loaded(self, path: Path, ok: bool, t0: float) -> None:
        if self._on_load is not None:
            self._on_load(str(path), ok, time.monotonic() - t0)

    def _load(self, name: str, version: int, path: Path) -> LoadedVersion:
        module = tf.saved_model.load(str(path), tags=["serve"])
        sigs = dict(module.signatures)
        if not sigs:
            raise ValueError(f"{path} has no signatures")
        lv = LoadedVersion(name, version, path, module, sigs, _signature_defs(path))
        if self._run_predict is not None:
            n = _warmup(lv, self._run_predict)
            if n:
                log.info("model %s version %d warmed up with %d requests", name, version, n)
        return lv

    # ------------------------------------------------------------------ polling
    def start_polling(self) -> None:
        if self.poll_wait_s <= 0 and self.config_poll_wait_s <= 0:
            return
        self._thread = threading.Thread(target=self._poll, name="model-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _poll(self) -> None:
        last_config = time.monotonic()
        wait = min(x for x in (self.poll_wait_s, self.config_poll_wait_s) if x > 0)
        while not self._stop.wait(wait):
            try:
                if (
                    self.config_file
                    and self.config_poll_wait_s > 0
                    and time.monotonic() - last_config >= self.config_poll_wait_s
                ):
                    last_config = time.monotonic()
                    text = self.config_file.read_text() if self.config_file.is_file() else None
                    if text is not None and text != self._config_text:
                        self._config_text = text
                        log.info("models.config changed: reloading")
                        self.set_config(parse_config_text(text))
                        continue
                if self.poll_wait_s > 0:
                    self.sync()
            except Exception:  # keep polling; the log says what went wrong
                log.exception("model poll failed")

    # ------------------------------------------------------------------ lookups
    def resolve(self, spec) -> LoadedVersion:
        """ModelSpec -> loaded version, or ServingError(NOT_FOUND) as TF Serving says it."""
        if not spec.name:
            raise ServingError("INVALID_ARGUMENT", "Missing ModelSpec")
        with self._lock:
            m = self._models.get(spec.name)
            versions = m.versions if m else {}
            labels = m.entry.labels if m else {}
        which = spec.WhichOneof("version_choice")
        if m is None or not versions and which is None:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({spec.name})")
        if which == "version":
            v = spec.version.value
            if v not in versions:
                raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({spec.name}, {v})")
            return versions[v]
        if which == "version_label":
            label = spec.version_label
            if label not in labels:
                raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
            v = labels[label]
            if v not in versions:
                raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({spec.name}, {v})")
            return versions[v]
        return versions[max(versions)]

    def status(self, name: str, version: int | None = None) -> list[tuple[int, int, str]]:
        """[(version, state, error message)] for GetModelStatus."""
        with self._lock:
            m = self._models.get(name)
            if m is None:
                raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
            states = dict(m.states)
            errors = dict(m.errors)
        if version is not None:
            if version not in states:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {name}")
            states = {version: states[version]}
        if not states:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
        return [(v, s, errors.get(v, "")) for v, s in sorted(states.items(), reverse=True)]

    def version_states(self) -> list[tuple[str, int, str]]:
        """(model, version, state name) of every version known, for the metrics."""
        with self._lock:
            return [(n, v, State.Name(st)) for n, m in self._models.items() for v, st in sorted(m.states.items())]

    def models(self) -> dict[str, ModelEntry]:
        with self._lock:
            return {n: m.entry for n, m in self._models.items()}
