"""`sensorwatch serve`, `models` and `score` as a user runs them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from savedmodels import S

from sensorwatch.core.config import ServingConfig
from sensorwatch.serving.client import ScoringClient
from sensorwatch.stack import free_port

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def test_serve_models_score_end_to_end(repo):
    port = free_port()
    env = dict(
        os.environ,
        SENSORWATCH__SERVING__MODEL_BASE_PATH=str(repo.base),
        SENSORWATCH__SERVING__PORT=str(port),
        SENSORWATCH__SERVING__TARGET=f"127.0.0.1:{port}",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensorwatch", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        c = ScoringClient(
            ServingConfig(target=f"127.0.0.1:{port}", backoff_initial_s=0.2, backoff_max_s=0.5, deadline_s=2),
            attempts=60,
        )
        assert c.score("pump", np.full((1, S), 10.0, np.float32)).model_version == 1
        c.close()
        out = subprocess.run(
            [sys.executable, "-m", "sensorwatch", "models"], env=env, capture_output=True, text=True, check=True
        ).stdout
        rows = json.loads(out)
        assert rows[0]["model"] == "pump" and rows[0]["served"] == {"1": "AVAILABLE"} and rows[0]["on_disk"] == [1]
        window = json.dumps([10.0] * (S - 1) + [30.0])
        out = subprocess.run(
            [sys.executable, "-m", "sensorwatch", "score", "pump", window],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out)
        assert r["is_anomaly"] is True and abs(r["score"] - 100.0 / S) < 1e-4 and r["threshold"] == 4.0
    finally:
        proc.terminate()
        proc.wait(timeout=20)
