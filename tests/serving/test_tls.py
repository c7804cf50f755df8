"""TLS between the client (the job's) and the model server, with a self-signed certificate."""

import grpc
import numpy as np
import pytest
from savedmodels import S

from sensorwatch.core.config import ServingConfig
from sensorwatch.serving.client import ScoringClient
from sensorwatch.serving.server import ModelServer

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def test_tls_round_trip_and_plaintext_refused(repo, cert):
    crt, key = cert
    srv = ModelServer(repo.read_config(), port=0, tls_cert=crt, tls_key=key).start()
    try:
        c = ScoringClient(ServingConfig(target=f"localhost:{srv.port}", tls_ca=crt))
        assert c.score("pump", np.full((2, S), 10.0, np.float32)).model_version == 1
        c.close()
        plain = ScoringClient(ServingConfig(target=f"127.0.0.1:{srv.port}", deadline_s=2), attempts=0)
        with pytest.raises(grpc.RpcError) as exc:
            plain.score("pump", np.full((1, S), 10.0, np.float32))
        assert exc.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        plain.close()
    finally:
        srv.stop()
