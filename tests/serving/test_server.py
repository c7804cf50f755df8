"""The model server over real SavedModels, every implemented RPC, TF Serving's semantics."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
from savedmodels import S, export, reference_scores

from sensorwatch.core.config import ServingConfig
from sensorwatch.serving.client import ScoringClient
from sensorwatch.serving.protos import pb

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def _client(server, attempts: int | None = 5) -> ScoringClient:
    return ScoringClient(ServingConfig(target=server.target), attempts=attempts)


def _windows(n=5, seed=0):
    return np.random.default_rng(seed).normal(10, 3, (n, S)).astype(np.float32)


def test_predict_equals_in_process_savedmodel(server, repo):
    c = _client(server)
    w = _windows(64)
    r = c.score("pump", w)
    ref = reference_scores(repo.model_dir("pump") / "1", w)
    np.testing.assert_allclose(r.score, ref["score"], rtol=1e-6)
    np.testing.assert_allclose(r.per_step_error, ref["per_step_error"], rtol=1e-6)
    np.testing.assert_array_equal(r.is_anomaly, ref["is_anomaly"])
    np.testing.assert_array_equal(r.threshold, np.full(64, 4.0, np.float32))
    assert (r.model_name, r.model_version) == ("pump", 1)
    c.close()


def test_unknown_model_and_version_are_not_found(server):
    c = _client(server, attempts=0)
    with pytest.raises(grpc.RpcError) as exc:
        c.score("no-such-model", _windows())
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-model" in exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        c.score("pump", _windows(), version=99)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("bad", ["wrong_dtype", "wrong_shape", "wrong_name", "short_content"])
def test_malformed_tensor_is_invalid_argument_and_server_keeps_serving(server, bad):
    c = _client(server, attempts=0)
    req = pb.predict_pb2.PredictRequest()
    req.model_spec.name = "pump"
    w = _windows()
    from sensorwatch.serving.tensors import to_tensor_proto

    if bad == "wrong_dtype":
        req.inputs["values"].CopyFrom(to_tensor_proto(w.astype(np.float64)))
    elif bad == "wrong_shape":
        req.inputs["values"].CopyFrom(to_tensor_proto(w[:, :3]))
    elif bad == "wrong_name":
        req.inputs["vals"].CopyFrom(to_tensor_proto(w))
    else:
        t = to_tensor_proto(w)
        t.tensor_content = t.tensor_content[:-4]
        req.inputs["values"].CopyFrom(t)
    with pytest.raises(grpc.RpcError) as exc:
        c.predict_stub.Predict(req, timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details()
    assert c.score("pump", w).score.shape == (5,)  # still serving


def test_version_label_and_specific_version(server, repo):
    repo.publish("pump", lambda d: export(d, offset=100.0))
    repo.register("pump", policy="all", labels={"stable": 1, "canary": 2})
    c = _client(server)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        versions = {
            s.version for s in c.status("pump") if s.state == pb.get_model_status_pb2.ModelVersionStatus.AVAILABLE
        }
        if versions == {1, 2}:
            break
        time.sleep(0.1)
    assert versions == {1, 2}
    w = _windows()
    s1, s2 = c.score("pump", w, label="stable"), c.score("pump", w, label="canary")
    assert (s1.model_version, s2.model_version) == (1, 2)
    np.testing.assert_allclose(s2.score - s1.score, 100.0, rtol=1e-5)
    assert c.score("pump", w, version=1).model_version == 1
    assert c.score("pump", w).model_version == 2  # no version: the latest
    with pytest.raises(grpc.RpcError) as exc:
        c.score("pump", w, label="nightly", attempts=0)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class _Streams:
    """Four threads calling Predict without retries until stopped: each answer's version in
    ``seen``, each failure in ``errors``."""

    def __init__(self, server, threads: int = 4):
        self.client, self.w = _client(server, attempts=0), _windows(32)
        self.stop = threading.Event()
        self.seen: list[int] = []
        self.errors: list[Exception] = []
        self.threads = [threading.Thread(target=self._stream) for _ in range(threads)]

    def _stream(self) -> None:
        while not self.stop.is_set():
            try:
                self.seen.append(self.client.score("pump", self.w).model_version)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and fails the test
                self.errors.append(exc)

    def __enter__(self) -> _Streams:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def wait_for(self, version: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (not self.seen or self.seen[-1] != version):
            time.sleep(0.05)


def test_roll_forward_under_load_has_zero_failed_requests(server, repo):
    with _Streams(server) as st:
        time.sleep(0.5)
        repo.publish("pump", lambda d: export(d, offset=1.0))
        st.wait_for(2)
        time.sleep(0.5)
    c, seen, errors = st.client, st.seen, st.errors
    assert errors == []
    assert 1 in seen and seen[-1] == 2
    first2 = seen.index(2)
    assert len(seen) > 50
    states = {s.version: s.state for s in c.status("pump")}
    assert states[2] == pb.get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert states[1] == pb.get_model_status_pb2.ModelVersionStatus.END  # latest-1 policy unloads v1
    assert first2 > 0


def test_half_written_version_is_never_served(server, repo):
    """A folder without saved_model.pb (or a hidden temp folder) is not a version."""
    (repo.model_dir("pump") / "7").mkdir()
    (repo.model_dir("pump") / ".tmp-8-abc").mkdir()
    time.sleep(0.6)
    c = _client(server)
    assert c.score("pump", _windows()).model_version == 1
    assert [s.version for s in c.status("pump")] == [1]


def test_get_model_metadata_returns_signature(server):
    c = _client(server)
    version, sigs = c.metadata("pump")
    assert version == 1
    sig = sigs["serving_default"]
    assert set(sig.inputs) == {"values"}
    assert set(sig.outputs) == {"score", "threshold", "is_anomaly", "per_step_error"}
    assert [d.size for d in sig.inputs["values"].tensor_shape.dim] == [-1, S]


def test_get_model_status_unknown_is_not_found(server):
    c = _client(server, attempts=0)
    with pytest.raises(grpc.RpcError) as exc:
        c.status("nope")
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_reload_config_adds_a_model(server, repo, tmp_path):
    other = type(repo)(tmp_path / "other")
    other.publish("valve", lambda d: export(d, offset=5.0))
    from sensorwatch.serving.repository import config_text

    entries = repo.read_config() + [type(repo.read_config()[0])("valve", str(other.model_dir("valve")))]
    c = _client(server)
    resp = c.reload_config(config_text(entries))
    assert resp.status.error_code == 0
    assert c.score("valve", _windows()).model_name == "valve"


def test_other_rpcs_are_unimplemented(server):
    ch = grpc.insecure_channel(server.target)
    stub = pb.prediction_service_pb2_grpc.PredictionServiceStub(ch)
    from tensorflow_serving.apis import classification_pb2

    with pytest.raises(grpc.RpcError) as exc:
        stub.Classify(classification_pb2.ClassificationRequest(), timeout=5)
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED
    ch.close()


def test_binds_loopback_by_default(repo):
    from sensorwatch.serving.server import ModelServer

    srv = ModelServer(repo.read_config(), port=0)
    try:
        assert srv.target.startswith("127.0.0.1:")
    finally:
        srv.stop()


def test_metrics_in_prometheus_format_under_tf_servings_names(repo):
    """Requests by model, version and status with their latency, load attempts by outcome, and
    the versions loaded, on the REST port (TF Serving's path and /metrics) of a real server."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    from sensorwatch.serving.server import ModelServer

    srv = ModelServer(
        repo.read_config(), port=0, config_file=repo.config_file, poll_wait_s=0.2, rest_api_port=0
    ).start()
    try:
        c = ScoringClient(ServingConfig(target=srv.target), attempts=0)
        for _ in range(3):
            c.score("pump", _windows(), version=1)
        with pytest.raises(grpc.RpcError):
            c.score("no-such-model", _windows())
        c.close()
        (repo.model_dir("pump") / "2").mkdir()  # a broken version: a load failure (1 keeps serving)
        (repo.model_dir("pump") / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
        url = f"http://127.0.0.1:{srv.rest_api_port}"
        deadline = time.monotonic() + 20
        while 'status="error"' not in (text := requests.get(f"{url}/monitoring/prometheus/metrics", timeout=5).text):
            assert time.monotonic() < deadline, "the failed load never showed"
            time.sleep(0.2)
        assert requests.get(f"{url}/metrics", timeout=5).status_code == 200
    finally:
        srv.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }

    def value(name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))))

    assert value("tensorflow_serving_request_count_total", model_name="pump", version="1", status="OK") == 3
    assert (
        value("tensorflow_serving_request_count_total", model_name="no-such-model", version="", status="NOT_FOUND") == 1
    )
    lat = dict(model_name="pump", version="1", API="predict", entrypoint="GRPC")
    assert value("tensorflow_serving_request_latency_count", **lat) == 3
    assert value("tensorflow_serving_request_latency_sum", **lat) > 0
    path = str(repo.model_dir("pump"))
    assert value("tensorflow_cc_saved_model_load_attempt_count_total", model_path=f"{path}/1", status="success") == 1
    assert value("tensorflow_cc_saved_model_load_attempt_count_total", model_path=f"{path}/2", status="error") == 1
    assert value("sensorwatch_serving_model_versions", model_name="pump", version="1", state="AVAILABLE") == 1
    assert value("sensorwatch_serving_model_versions", model_name="pump", version="2", state="END") == 1


def test_rollback_under_load_has_zero_failed_requests(server, repo):
    """`sensorwatch models rollback` while clients stream: every request answered, by version 2
    until version 1 serves alone; `models unpin` brings version 2 back, again with no failure."""
    import json
    import os
    import subprocess
    import sys

    repo.publish("pump", lambda d: export(d, offset=1.0))
    env = dict(
        os.environ,
        SENSORWATCH__SERVING__MODEL_BASE_PATH=str(repo.base),
        SENSORWATCH__SERVING__TARGET=server.target,
    )
    cli = [sys.executable, "-m", "sensorwatch", "models"]
    with _Streams(server) as st:
        st.wait_for(2)
        time.sleep(0.5)
        before = st.seen[-1]
        back = subprocess.run([*cli, "rollback", "pump"], env=env, capture_output=True, text=True, timeout=120)
        n_rolled = len(st.seen)
        time.sleep(0.5)
        after_rollback = st.seen[n_rolled:]
        fwd = subprocess.run([*cli, "unpin", "pump"], env=env, capture_output=True, text=True, timeout=60)
        st.wait_for(2)
        time.sleep(0.3)
    seen, errors = st.seen, st.errors
    assert back.returncode == 0, back.stderr
    out = json.loads(back.stdout)
    assert out["from"] == 2 and out["to"] == 1 and out["done"] and out["served"]["1"] == "AVAILABLE"
    assert errors == [], errors[:3]
    assert before == 2 and after_rollback and set(after_rollback) == {1}, "version 1 alone once the CLI returns"
    (entry,) = repo.read_config()
    assert fwd.returncode == 0, fwd.stderr
    assert entry.policy == "latest" and seen[-1] == 2
    # the CLI says why it cannot: a version that is not on disk
    bad = subprocess.run([*cli, "rollback", "pump", "--to", "9"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "no version 9 on disk" in bad.stderr
