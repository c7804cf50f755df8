"""The job's client: retries across a server restart, deadlines, many windows per call, no TensorFlow."""

import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from savedmodels import S

from sensorwatch.core.config import ServingConfig
from sensorwatch.serving.client import ScoringClient
from sensorwatch.serving.server import ModelServer

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def test_client_import_does_not_load_tensorflow():
    code = (
        "import sys, sensorwatch.serving.client; print('tensorflow.python' in sys.modules, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_retries_ride_out_a_server_restart(repo):
    srv = ModelServer(repo.read_config(), port=0).start()
    port = srv.port
    c = ScoringClient(
        ServingConfig(target=f"127.0.0.1:{port}", backoff_initial_s=0.05, backoff_max_s=0.2, deadline_s=1.0),
        attempts=30,
    )
    w = np.full((2, S), 10.0, np.float32)
    assert c.score("pump", w).model_version == 1
    srv.stop()
    holder = {}

    def restart():
        time.sleep(1.5)
        holder["srv"] = ModelServer(repo.read_config(), port=port).start()

    t = threading.Thread(target=restart)
    t.start()
    t0 = time.monotonic()
    r = c.score("pump", w)  # UNAVAILABLE while down: retried until the server is back
    t.join()
    assert r.model_version == 1 and time.monotonic() - t0 >= 1.0
    holder["srv"].stop()
    c.close()


def test_no_retry_gives_unavailable_quickly(repo):
    c = ScoringClient(ServingConfig(target="127.0.0.1:1", deadline_s=0.5), attempts=0)
    with pytest.raises(grpc.RpcError) as exc:
        c.score("pump", np.zeros((1, S), np.float32))
    assert exc.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_many_windows_are_scored_in_one_call(server):
    c = ScoringClient(ServingConfig(target=server.target))
    try:
        r = c.score("pump", np.random.default_rng(1).normal(10, 2, (300, S)))
    finally:
        c.close()
    assert r.score.shape == (300,) and r.per_step_error.shape == (300, S)
