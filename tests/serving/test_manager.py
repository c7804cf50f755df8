"""The model manager when a new config arrives while it loads a version (a promotion's pin
reaching the server while its file poll loads the canary): real SavedModels, two threads."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from savedmodels import export

from sensorwatch.serving.manager import ModelManager, ServingError
from sensorwatch.serving.protos import pb


def _spec(name: str, version: int):
    spec = pb.model_pb2.ModelSpec(name=name)
    spec.version.value = version
    return spec


def test_a_config_adopted_during_a_load_keeps_what_the_load_brought(repo):
    """Found by the lifecycle test: a ReloadConfig adopted while the poll's sync loaded the new
    version replaced the model's record; the load landed on the old record. GetModelStatus said
    AVAILABLE, Predict said NOT_FOUND, and the version was loaded a second time."""
    loads: list[str] = []
    adopted = threading.Event()
    reloads: list[threading.Thread] = []
    (entry,) = repo.read_config()
    pinned = dataclasses.replace(entry, policy="specific", versions=[2], labels={"stable": 2})

    def reload_config() -> None:  # as HandleReloadConfigRequest does, on a gRPC thread
        manager.set_config([pinned])

    def on_load(path: str, ok: bool, seconds: float) -> None:
        loads.append(path)
        if path.endswith("/2") and not reloads:
            reloads.append(threading.Thread(target=reload_config, name="reload-config"))
            reloads[0].start()
            # the new config is in before this load is filed (its own sync then waits its turn)
            deadline = time.monotonic() + 30
            while manager.models()["pump"].labels != {"stable": 2}:
                assert time.monotonic() < deadline, "the concurrent config was not adopted"
                time.sleep(0.01)
            adopted.set()

    manager = ModelManager(repo.read_config(), poll_wait_s=0, on_load=on_load)
    repo.publish("pump", lambda d: export(d, offset=1.0))
    manager.sync()  # the poll's pass: policy latest wants version 2
    assert adopted.is_set()
    states = {v: st for v, st, _ in manager.status("pump")}
    assert states.get(2) == pb.get_model_status_pb2.ModelVersionStatus.State.AVAILABLE
    assert manager.resolve(_spec("pump", 2)).version == 2, "AVAILABLE means Predict finds it"
    reloads[0].join(timeout=60)  # the concurrent config's own pass
    assert not reloads[0].is_alive()
    assert len([p for p in loads if p.endswith("/2")]) == 1, f"version 2 loaded once, not {loads}"
    assert manager.resolve(_spec("pump", 2)).version == 2
    with pytest.raises(ServingError, match="not found"):
        manager.resolve(_spec("pump", 1))  # the pin serves version 2 alone
