"""The job's client: retries across a server restart, deadlines, the async twin, no TensorFlow."""

import asyncio
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from savedmodels import S

from serving.client import AsyncScoringClient, ClientConfig, ScoringClient
from serving.server import ModelServer


def test_client_import_does_not_load_tensorflow():
    code = "import sys, serving.client; print('tensorflow.python' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_retries_ride_out_a_server_restart(repo):
    srv = ModelServer(repo.read_config(), port=0).start()
    port = srv.port
    c = ScoringClient(ClientConfig(target=f"127.0.0.1:{port}", retries=30, backoff_initial_s=0.05,
                                   backoff_max_s=0.2, deadline_s=1.0))
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
    c = ScoringClient(ClientConfig(target="127.0.0.1:1", retries=0, deadline_s=0.5))
    with pytest.raises(grpc.RpcError) as exc:
        c.score("pump", np.zeros((1, S), np.float32))
    assert exc.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_async_client_batches_in_one_call(server):
    async def run():
        c = AsyncScoringClient(ClientConfig(target=server.target))
        try:
            return await c.score("pump", np.random.default_rng(1).normal(10, 2, (300, S)))
        finally:
            await c.close()

    r = asyncio.run(run())
    assert r.score.shape == (300,) and r.per_step_error.shape == (300, S)
