"""A real model server on a free port, over a repository of real SavedModels."""

from __future__ import annotations

import pytest
from savedmodels import export

from sensorwatch.serving.repository import ModelRepository
from sensorwatch.serving.server import ModelServer


@pytest.fixture
def repo(tmp_path) -> ModelRepository:
    r = ModelRepository(tmp_path / "models")
    r.publish("pump", lambda d: export(d, offset=0.0))
    r.register("pump", labels={"stable": 1})
    return r


@pytest.fixture
def server(repo):
    srv = ModelServer(
        repo.read_config(), port=0, config_file=repo.config_file, poll_wait_s=0.2, config_poll_wait_s=0.2
    ).start()
    yield srv
    srv.stop()
