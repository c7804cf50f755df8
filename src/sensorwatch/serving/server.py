"""``sensorwatch serve``: TensorFlow Serving's gRPC API over TF Serving's model layout.

Implements PredictionService ``Predict`` and ``GetModelMetadata`` (``Classify``,
``Regress`` and ``MultiInference`` answer UNIMPLEMENTED) and ModelService
``GetModelStatus`` and ``HandleReloadConfigRequest``, with TF Serving's status codes, so
a client written against tensorflow/serving works unchanged. Flags are named after
tensorflow_model_server's. Unlike it, the server binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf

from sensorwatch.serving.manager import LoadedVersion, ModelManager, ServingError
from sensorwatch.serving.metrics import METRICS_PATH, ServerMetrics
from sensorwatch.serving.protos import pb
from sensorwatch.serving.repository import ModelEntry, RepositoryError, parse_config_text
from sensorwatch.serving.tensors import TensorError, dtype_name, from_tensor_proto, to_tensor_proto

log = logging.getLogger("sensorwatch.serving")

MAX_MESSAGE = 64 * 1024 * 1024
DEFAULT_SIGNATURE = "serving_default"


def _abort(context, err: ServingError):
    context.abort(getattr(grpc.StatusCode, err.code), str(err))


def run_predict(lv: LoadedVersion, request) -> tuple[str, dict[str, np.ndarray]]:
    """Validate the request against the signature, run it, return (signature name, outputs)."""
    sig_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    if sig_name not in lv.signatures:
        raise ServingError("INVALID_ARGUMENT", f'Serving signature name: "{sig_name}" not found in signature def')
    fn = lv.signatures[sig_name]
    specs = fn.structured_input_signature[1]
    got, want = set(request.inputs), set(specs)
    if got != want:
        missing, extra = sorted(want - got), sorted(got - want)
        raise ServingError(
            "INVALID_ARGUMENT",
            f"input tensor alias not found in signature: {', '.join(extra or missing)}. "
            f"Inputs expected to be in the set {{{', '.join(sorted(want))}}}.",
        )
    feeds = {}
    for name, spec in specs.items():
        proto = request.inputs[name]
        if proto.dtype != spec.dtype.as_datatype_enum:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"Expects arg[{name}] to be {spec.dtype.name} but {dtype_name(proto.dtype).removeprefix('DT_').lower()} is provided",
            )
        try:
            arr = from_tensor_proto(proto)
        except TensorError as exc:
            raise ServingError("INVALID_ARGUMENT", f"input {name}: {exc}") from None
        if not spec.shape.is_compatible_with(arr.shape):
            raise ServingError(
                "INVALID_ARGUMENT", f"input {name} has shape {list(arr.shape)}, the signature expects {spec.shape}"
            )
        feeds[name] = tf.constant(arr, dtype=spec.dtype) if arr.dtype != object else tf.constant(arr.astype(bytes))
    try:
        out = fn(**feeds)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
        raise ServingError("INVALID_ARGUMENT", str(exc).splitlines()[0][:500]) from None
    wanted = list(request.output_filter) or list(out)
    for name in wanted:
        if name not in out:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"output tensor alias not found in signature: {name} Outputs expected to be in the set {{{', '.join(sorted(out))}}}.",
            )
    return sig_name, {k: out[k].numpy() for k in wanted}


class PredictionServicer(pb.prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager, metrics: ServerMetrics):
        self.manager = manager
        self.metrics = metrics

    def Predict(self, request, context):
        t0, lv = time.perf_counter(), None
        try:
            lv = self.manager.resolve(request.model_spec)
            sig_name, outputs = run_predict(lv, request)
        except ServingError as err:
            version = lv.version if lv is not None else None
            self.metrics.request(request.model_spec.name, version, err.code, time.perf_counter() - t0, "predict")
            return _abort(context, err)
        self.metrics.request(lv.name, lv.version, "OK", time.perf_counter() - t0, "predict")
        resp = pb.predict_pb2.PredictResponse()
        resp.model_spec.name = lv.name
        resp.model_spec.version.value = lv.version
        resp.model_spec.signature_name = sig_name
        for k, v in outputs.items():
            resp.outputs[k].CopyFrom(to_tensor_proto(v))
        return resp

    def GetModelMetadata(self, request, context):
        try:
            lv = self.manager.resolve(request.model_spec)
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise ServingError(
                    "INVALID_ARGUMENT", f"Metadata field {', '.join(fields) or '(none)'} is not supported"
                )
        except ServingError as err:
            return _abort(context, err)
        resp = pb.get_model_metadata_pb2.GetModelMetadataResponse()
        resp.model_spec.name = lv.name
        resp.model_spec.version.value = lv.version
        sigmap = pb.get_model_metadata_pb2.SignatureDefMap()
        for k, v in lv.signature_defs.items():
            sigmap.signature_def[k].CopyFrom(v)
        resp.metadata["signature_def"].Pack(sigmap)
        return resp


class ModelServicer(pb.model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        spec = request.model_spec
        try:
            if not spec.name:
                raise ServingError("INVALID_ARGUMENT", "Missing ModelSpec")
            if spec.WhichOneof("version_choice") == "version_label":
                version = self.manager.models().get(spec.name, ModelEntry("", "")).labels.get(spec.version_label)
                if version is None:
                    raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {spec.version_label}")
            else:
                version = spec.version.value if spec.HasField("version") else None
            rows = self.manager.status(spec.name, version)
        except ServingError as err:
            return _abort(context, err)
        resp = pb.get_model_status_pb2.GetModelStatusResponse()
        for v, state, error in rows:
            s = resp.model_version_status.add(version=v, state=state)
            if error:
                s.status.error_code = 13  # INTERNAL: the load failed
                s.status.error_message = error
        return resp

    def HandleReloadConfigRequest(self, request, context):
        resp = pb.model_management_pb2.ReloadConfigResponse()
        if request.config.WhichOneof("config") != "model_config_list":
            resp.status.error_code = 3
            resp.status.error_message = "ServerCore only supports model_config_list"
            return resp
        entries = [ModelEntry.from_proto(c) for c in request.config.model_config_list.config]
        try:
            self.manager.set_config(entries)
        except ServingError as err:
            resp.status.error_code = 3
            resp.status.error_message = str(err)
        return resp


class ModelServer:
    """The server object the CLI, the demo and the tests start and stop."""

    def __init__(
        self,
        entries: list[ModelEntry],
        host: str = "127.0.0.1",
        port: int = 8500,
        config_file: Path | None = None,
        poll_wait_s: float = 1.0,
        config_poll_wait_s: float = 0.0,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        workers: int = 8,
        rest_api_port: int | None = None,
    ):
        self.metrics = ServerMetrics(lambda: iter(self.manager.version_states()))
        self.manager = ModelManager(
            entries, config_file, poll_wait_s, config_poll_wait_s, run_predict=run_predict, on_load=self.metrics.load
        )
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict"),
            options=[("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)],
        )
        pb.prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.manager, self.metrics), self.server
        )
        pb.model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.manager), self.server)
        address = f"{host}:{port}"
        if tls_cert and tls_key:
            creds = grpc.ssl_server_credentials([(Path(tls_key).read_bytes(), Path(tls_cert).read_bytes())])
            self.port = self.server.add_secure_port(address, creds)
        else:
            self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"could not bind {address}")
        self.host = host
        #: TF Serving's REST port, here only for the metrics (None: off; 0: a free port once started)
        self.rest_api_port = rest_api_port

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> ModelServer:
        self.server.start()
        self.manager.start_polling()
        log.info("model server listening on %s", self.target)
        if self.rest_api_port is not None:
            self.rest_api_port = self.metrics.serve(self.host, self.rest_api_port)
            log.info("metrics at http://%s:%d%s", self.host, self.rest_api_port, METRICS_PATH)
        return self

    def stop(self, grace: float = 2.0) -> None:
        self.manager.stop()
        self.server.stop(grace).wait()
        self.metrics.stop()


def entries_from_flags(args) -> tuple[list[ModelEntry], Path | None]:
    if args.model_config_file:
        path = Path(args.model_config_file)
        return parse_config_text(path.read_text()), path
    if args.model_name and args.model_base_path:
        return [ModelEntry(args.model_name, str(Path(args.model_base_path).resolve()))], None
    raise RepositoryError("give --model_config_file, or --model_name with --model_base_path")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sensorwatch serve", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8500, help="gRPC port (0: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="bind address; loopback unless told otherwise")
    p.add_argument("--model_config_file", help="models.config (ModelServerConfig text format)")
    p.add_argument(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=0.0,
        help="re-read models.config this often (0: never)",
    )
    p.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="rescan model base paths for versions this often",
    )
    p.add_argument("--model_name", help="single-model mode: its name")
    p.add_argument("--model_base_path", help="single-model mode: its base path")
    p.add_argument("--ssl_cert", help="PEM certificate: serve over TLS")
    p.add_argument("--ssl_key", help="PEM private key for --ssl_cert")
    p.add_argument("--workers", type=int, default=8, help="request threads")
    p.add_argument(
        "--rest_api_port",
        type=int,
        default=0,
        help=f"serve Prometheus metrics on this port at {METRICS_PATH} and /metrics (0: off, as in TF Serving)",
    )
    p.add_argument(
        "--allow_version_labels_for_unavailable_models",
        type=lambda v: str(v).lower() in ("1", "true", "yes"),
        default=False,
        help="TF Serving refuses a models.config whose label names a version not yet loaded unless this is "
        "true; a rollback or a promotion pins a version and labels it in one write, so set it there. The "
        "local server always accepts such a label (a request by it is refused until the version is loaded)",
    )
    p.add_argument(
        "--monitoring_config_file",
        help="TF Serving's MonitoringConfig (text proto): metrics are served when its prometheus_config "
        "says enable: true (without this flag the local server serves them on --rest_api_port anyway)",
    )
    return p


def prometheus_enabled(text: str) -> bool:
    """Whether a MonitoringConfig text proto turns the Prometheus endpoint on (the one field the
    local server reads; it answers on every path, so ``path`` does not matter here).

    >>> prometheus_enabled('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }')
    True
    >>> prometheus_enabled("prometheus_config { enable: false }")
    False
    """
    m = re.search(r"prometheus_config\s*:?\s*\{([^}]*)\}", text)
    return bool(m and re.search(r"\benable\s*:\s*true\b", m.group(1)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.monitoring_config_file and not prometheus_enabled(Path(args.monitoring_config_file).read_text()):
        args.rest_api_port = 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        entries, config_file = entries_from_flags(args)
    except (RepositoryError, OSError) as exc:
        print(f"sensorwatch serve: {exc}", file=sys.stderr)
        return 2
    server = ModelServer(
        entries,
        args.host,
        args.port,
        config_file,
        args.file_system_poll_wait_seconds,
        args.model_config_file_poll_wait_seconds,
        args.ssl_cert,
        args.ssl_key,
        args.workers,
        args.rest_api_port or None,
    ).start()
    print(f"serving on {server.target}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
