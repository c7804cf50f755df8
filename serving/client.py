"""Client of the TF Serving gRPC API, for the job and the CLI. No TensorFlow import.

One channel per process (``ScoringClient.shared``), reused by every call; a deadline on
every RPC; retries with exponential backoff on UNAVAILABLE and DEADLINE_EXCEEDED (the
server restarting, a slow load) and on nothing else; many windows in one Predict.
``AsyncScoringClient`` is the same over ``grpc.aio`` for PyFlink's async functions.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from sensorwatch.windows import FEATURES
from serving.protos import pb
from serving.tensors import from_tensor_proto, to_tensor_proto

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20),
           ("grpc.keepalive_time_ms", 30_000)]


def channel_options(cfg: "ClientConfig") -> list[tuple[str, int]]:
    """:data:`OPTIONS` plus reconnect backoff bounded by the client's own retry backoff.

    gRPC's default reconnect backoff grows to 120 s: after a 30 s outage the channel could sit
    out its next attempt for tens of seconds with the server already back, every call failing
    UNAVAILABLE meanwhile. Capped at ``backoff_max_s``, scoring resumes within that of the
    server's return (the model-server outage test once waited 40 s past it).
    """
    return OPTIONS + [("grpc.initial_reconnect_backoff_ms", max(1, int(cfg.backoff_initial_s * 1000))),
                      ("grpc.max_reconnect_backoff_ms", max(1, int(cfg.backoff_max_s * 1000)))]


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


@dataclass
class ClientConfig:
    target: str = "127.0.0.1:8500"
    deadline_s: float = 2.0
    retries: int = 5
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @classmethod
    def from_settings(cls, s) -> "ClientConfig":
        return cls(s.target, s.deadline_s, s.retries, s.backoff_initial_s, s.backoff_max_s, s.tls_ca, s.tls_cert, s.tls_key)

    def credentials(self):
        if not self.tls_ca:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=Path(self.tls_ca).read_bytes(),
            private_key=Path(self.tls_key).read_bytes() if self.tls_key else None,
            certificate_chain=Path(self.tls_cert).read_bytes() if self.tls_cert else None,
        )


def predict_request(model: str, inputs: dict[str, np.ndarray], version: int | None = None,
                    label: str | None = None, signature: str = "serving_default"):
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
    in the order of :data:`sensorwatch.windows.FEATURES` (``values``, ``stddev``, ``count``),
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


def _backoff(cfg: ClientConfig, attempt: int) -> float:
    return min(cfg.backoff_max_s, cfg.backoff_initial_s * 2**attempt) * random.uniform(0.5, 1.0)


class ScoringClient:
    """Blocking client. Thread-safe: gRPC channels are."""

    _shared: dict[tuple, "ScoringClient"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, cfg: ClientConfig):
        self.cfg = cfg
        creds = cfg.credentials()
        self.channel = (grpc.secure_channel(cfg.target, creds, options=channel_options(cfg)) if creds
                        else grpc.insecure_channel(cfg.target, options=channel_options(cfg)))
        self.predict_stub = pb.prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_stub = pb.model_service_pb2_grpc.ModelServiceStub(self.channel)

    @classmethod
    def shared(cls, cfg: ClientConfig) -> "ScoringClient":
        """The process's one client for this configuration."""
        key = tuple(str(x) for x in vars(cfg).values())
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(cfg)
            return cls._shared[key]

    def close(self) -> None:
        self.channel.close()

    def _call(self, method, request, retries: int | None = None):
        retries = self.cfg.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return method(request, timeout=self.cfg.deadline_s)
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE or attempt == retries:
                    raise
                time.sleep(_backoff(self.cfg, attempt))
        raise AssertionError("unreachable")

    def predict(self, model: str, inputs: dict[str, np.ndarray], version: int | None = None,
                label: str | None = None, retries: int | None = None):
        return self._call(self.predict_stub.Predict, predict_request(model, inputs, version, label), retries)

    def score(self, model: str, windows: np.ndarray, sensors: list[str] | None = None,
              version: int | None = None, label: str | None = None, retries: int | None = None) -> ScoreResult:
        """Score a batch of windows ([N, S] float32) with one Predict call."""
        return parse_response(self.predict(model, score_inputs(windows, sensors), version, label, retries))

    def metadata(self, model: str, version: int | None = None):
        req = pb.get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        req.model_spec.name = model
        if version is not None:
            req.model_spec.version.value = version
        resp = self._call(self.predict_stub.GetModelMetadata, req)
        sigmap = pb.get_model_metadata_pb2.SignatureDefMap()
        resp.metadata["signature_def"].Unpack(sigmap)
        return int(resp.model_spec.version.value), sigmap.signature_def

    def status(self, model: str, version: int | None = None):
        req = pb.get_model_status_pb2.GetModelStatusRequest()
        req.model_spec.name = model
        if version is not None:
            req.model_spec.version.value = version
        return self._call(self.model_stub.GetModelStatus, req).model_version_status

    def reload_config(self, config_text: str):
        from google.protobuf import text_format

        cfg = pb.model_server_config_pb2.ModelServerConfig()
        text_format.Parse(config_text, cfg)
        req = pb.model_management_pb2.ReloadConfigRequest(config=cfg)
        return self._call(self.model_stub.HandleReloadConfigRequest, req)


class AsyncScoringClient:
    """``grpc.aio`` twin of :class:`ScoringClient`. Create it inside the running event loop."""

    def __init__(self, cfg: ClientConfig):
        self.cfg = cfg
        creds = cfg.credentials()
        self.channel = (grpc.aio.secure_channel(cfg.target, creds, options=channel_options(cfg)) if creds
                        else grpc.aio.insecure_channel(cfg.target, options=channel_options(cfg)))
        self.predict_stub = pb.prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def score(self, model: str, windows: np.ndarray, sensors: list[str] | None = None,
                    retries: int | None = None) -> ScoreResult:
        """Like :meth:`ScoringClient.score`; ``retries=-1`` retries for ever (the job: delay, never lose)."""
        req = predict_request(model, score_inputs(windows, sensors))
        retries = self.cfg.retries if retries is None else retries
        attempt = 0
        while True:
            try:
                resp = await self.predict_stub.Predict(req, timeout=self.cfg.deadline_s)
                return parse_response(resp)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or (retries >= 0 and attempt >= retries):
                    raise
                await asyncio.sleep(_backoff(self.cfg, min(attempt, 16)))
                attempt += 1
