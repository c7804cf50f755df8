"""Client of the TF Serving gRPC API, for the job and the command line. No TensorFlow import.

One channel per client, reused by every call; a deadline on every RPC; retries on
UNAVAILABLE and DEADLINE_EXCEEDED (the server restarting, a slow load) and on nothing else,
timed by :class:`~sensorwatch.core.retry.RetryPolicy`; many windows in one Predict. The
client takes the configuration's ``serving`` section as it is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from sensorwatch.core.config import ServingConfig
from sensorwatch.core.retry import RetryPolicy
from sensorwatch.core.windows import FEATURES
from sensorwatch.serving.protos import pb
from sensorwatch.serving.tensors import from_tensor_proto, to_tensor_proto

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
OPTIONS = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.keepalive_time_ms", 30_000),
]
#: Retries of the command line's calls: a person waits for an answer, the job never gives up.
INTERACTIVE_ATTEMPTS = 5


def channel_credentials(sv: ServingConfig) -> grpc.ChannelCredentials | None:
    """TLS credentials when ``serving.tls_ca`` is set (mutual TLS with ``tls_cert``/``tls_key``)."""
    if not sv.tls_ca:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=Path(sv.tls_ca).read_bytes(),
        private_key=Path(sv.tls_key).read_bytes() if sv.tls_key else None,
        certificate_chain=Path(sv.tls_cert).read_bytes() if sv.tls_cert else None,
    )


def open_channel(sv: ServingConfig) -> grpc.Channel:
    """A channel to ``serving.target``, TLS as configured, reconnects bounded by the retry policy."""
    options = OPTIONS + RetryPolicy.of(sv).reconnect_options()
    creds = channel_credentials(sv)
    return (
        grpc.secure_channel(sv.target, creds, options=options)
        if creds
        else grpc.insecure_channel(sv.target, options=options)
    )


@dataclass
class ScoreResult:
    """What a sensorwatch model returns for a batch of windows, and which version said it."""

    model_name: str
    model_version: int
    score: np.ndarray
    threshold: np.ndarray
    is_anomaly: np.ndarray
    per_step_error: np.ndarray | None
    extra: dict[str, np.ndarray]


def predict_request(
    model: str,
    inputs: dict[str, np.ndarray],
    version: int | None = None,
    label: str | None = None,
    signature: str = "serving_default",
):
    req = pb.predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    elif label is not None:
        req.model_spec.version_label = label
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(to_tensor_proto(v))
    return req


def score_inputs(windows, sensors: list[str] | None = None) -> dict[str, np.ndarray]:
    """The inputs of sensorwatch's serving signature, and ``sensor`` [N] for packed models.

    ``windows`` [N, S] is the means alone (``values``); [N, S, F] are the per-window features
    in the order of :data:`sensorwatch.core.windows.FEATURES` (``values``, ``stddev``, ``count``),
    which is what models trained by sensorwatch take.
    """
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim == 3:
        if w.shape[2] != len(FEATURES):
            raise ValueError(f"windows [N, S, F] need F = {len(FEATURES)} ({', '.join(FEATURES)}), got {w.shape[2]}")
        inputs = {name: np.ascontiguousarray(w[:, :, i]) for i, name in enumerate(FEATURES)}
    else:
        inputs = {"values": w}
    if sensors is not None:
        inputs["sensor"] = np.asarray(sensors, dtype=object)
    return inputs


def device_inputs(devices: list[str], tags, windows) -> dict[str, np.ndarray]:
    """The inputs of a device model's signature: ``device`` [N], ``tag`` [N, C] (``""`` pads),
    each feature [N, S, C] and ``mask`` [N, S, C], from ``windows`` [N, S, C, F] (features in
    the order of :data:`FEATURES`, NaN where a tag had no reading in that step)."""
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim != 4 or w.shape[3] != len(FEATURES):
        raise ValueError(f"device windows [N, S, C, F] need F = {len(FEATURES)}, got shape {list(w.shape)}")
    present = np.isfinite(w).all(axis=3)
    w = np.where(present[..., None], w, 0.0).astype(np.float32)
    inputs = {"device": np.asarray(devices, dtype=object), "tag": np.asarray(tags, dtype=object)}
    inputs.update({name: np.ascontiguousarray(w[..., i]) for i, name in enumerate(FEATURES)})
    inputs["mask"] = present.astype(np.float32)
    return inputs


def parse_response(resp) -> ScoreResult:
    out = {k: from_tensor_proto(v) for k, v in resp.outputs.items()}
    missing = {"score", "threshold", "is_anomaly"} - set(out)
    if missing:
        raise ValueError(f"model {resp.model_spec.name} returned no {sorted(missing)}: not a sensorwatch model")
    return ScoreResult(
        resp.model_spec.name,
        int(resp.model_spec.version.value),
        out.pop("score"),
        out.pop("threshold"),
        out.pop("is_anomaly").astype(bool),
        out.pop("per_step_error", None),
        out,
    )


class ScoringClient:
    """Blocking client. Thread-safe: gRPC channels are.

    ``attempts``: retries of a failed call before its error is raised (``None``: for ever).
    """

    def __init__(self, serving: ServingConfig, attempts: int | None = INTERACTIVE_ATTEMPTS):
        self.serving = serving
        self.retry = RetryPolicy.of(serving, attempts)
        self.channel = open_channel(serving)
        self.predict_stub = pb.prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_stub = pb.model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _call(self, method, request, attempts: int | None = -1):
        """``attempts`` overrides the client's for this call (-1: the client's own)."""
        policy = self.retry if attempts == -1 else RetryPolicy(self.retry.initial_s, self.retry.max_s, attempts)
        attempt = 0
        while True:
            try:
                return method(request, timeout=self.serving.deadline_s)
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE or not policy.retries_left(attempt):
                    raise
                time.sleep(policy.delay(attempt))
                attempt += 1

    def predict(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        version: int | None = None,
        label: str | None = None,
        attempts: int | None = -1,
    ):
        return self._call(self.predict_stub.Predict, predict_request(model, inputs, version, label), attempts)

    def score(
        self,
        model: str,
        windows: np.ndarray,
        sensors: list[str] | None = None,
        version: int | None = None,
        label: str | None = None,
        attempts: int | None = -1,
    ) -> ScoreResult:
        """Score a batch of windows ([N, S] float32) with one Predict call."""
        return parse_response(self.predict(model, score_inputs(windows, sensors), version, label, attempts))

    def metadata(self, model: str, version: int | None = None):
        req = pb.get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        req.model_spec.name = model
        if version is not None:
            req.model_spec.version.value = version
        resp = self._call(self.predict_stub.GetModelMetadata, req)
        sigmap = pb.get_model_metadata_pb2.SignatureDefMap()
        resp.metadata["signature_def"].Unpack(sigmap)
        return int(resp.model_spec.version.value), sigmap.signature_def

    def status(self, model: str, version: int | None = None, attempts: int | None = -1):
        req = pb.get_model_status_pb2.GetModelStatusRequest()
        req.model_spec.name = model
        if version is not None:
            req.model_spec.version.value = version
        return self._call(self.model_stub.GetModelStatus, req, attempts).model_version_status

    def reload_config(self, config_text: str):
        from google.protobuf import text_format

        cfg = pb.model_server_config_pb2.ModelServerConfig()
        text_format.Parse(config_text, cfg)
        req = pb.model_management_pb2.ReloadConfigRequest(config=cfg)
        return self._call(self.model_stub.HandleReloadConfigRequest, req)


def served_states(client: ScoringClient, model: str) -> dict[int, str]:
    """``{version: state name}`` as the server reports ``model`` (GetModelStatus); ``{-1: why}``
    when it cannot answer (down, or the model unknown to it)."""
    name = pb.get_model_status_pb2.ModelVersionStatus.State.Name
    try:
        return {int(st.version): name(st.state) for st in client.status(model, attempts=0)}
    except grpc.RpcError as exc:
        return {-1: f"{exc.code().name}: {exc.details()}"}


def wait_alone(client: ScoringClient, model: str, version: int, timeout_s: float) -> tuple[bool, dict[int, str]]:
    """Wait until the server answers ``model`` with ``version`` alone (after a pin, a rollback,
    a promotion); ``(done, the states last seen)``."""
    deadline = time.monotonic() + timeout_s
    while True:
        served = served_states(client, model)
        if [v for v, st in served.items() if st == "AVAILABLE"] == [version]:
            return True, served
        if time.monotonic() >= deadline:
            return False, served
        time.sleep(0.2)
