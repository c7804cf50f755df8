"""TensorFlow Serving's protos and gRPC stubs, without importing TensorFlow.

``tensorflow_serving.apis`` imports ``tensorflow.core.framework.*_pb2``, and importing any
``tensorflow.*`` module first runs ``tensorflow/__init__.py``: the whole runtime. Measured
here: 10 s and 800 MB RSS, against 0.12 s and 31 MB for the protos alone. Flink's Python
workers only need the protos, so this module loads them with the ``tensorflow`` package
stood in by a bare namespace for the duration of the import, then removes the stand-in.
A later ``import tensorflow`` (the model server, training) runs the real package as usual
and shares these very proto modules. If TensorFlow is already imported, nothing is faked.

Everything that talks TF Serving's gRPC API imports its protos from here.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def _import_protos():
    stub = None
    if "tensorflow" not in sys.modules:
        spec = importlib.util.find_spec("tensorflow")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                "tensorflow-serving-api is required to talk to the model server: pip install 'sensorwatch[job]'"
            )
        stub = types.ModuleType("tensorflow")
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules["tensorflow"] = stub
    try:
        from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorflow.core.protobuf import meta_graph_pb2
        from tensorflow_serving.apis import (
            get_model_metadata_pb2,
            get_model_status_pb2,
            model_management_pb2,
            model_pb2,
            model_service_pb2_grpc,
            predict_pb2,
            prediction_service_pb2_grpc,
            status_pb2,
        )
        from tensorflow_serving.config import model_server_config_pb2
    finally:
        if stub is not None and sys.modules.get("tensorflow") is stub:
            del sys.modules["tensorflow"]
    return types.SimpleNamespace(
        tensor_pb2=tensor_pb2,
        tensor_shape_pb2=tensor_shape_pb2,
        types_pb2=types_pb2,
        meta_graph_pb2=meta_graph_pb2,
        get_model_metadata_pb2=get_model_metadata_pb2,
        get_model_status_pb2=get_model_status_pb2,
        model_management_pb2=model_management_pb2,
        model_pb2=model_pb2,
        model_service_pb2_grpc=model_service_pb2_grpc,
        predict_pb2=predict_pb2,
        prediction_service_pb2_grpc=prediction_service_pb2_grpc,
        model_server_config_pb2=model_server_config_pb2,
        status_pb2=status_pb2,
    )


pb = _import_protos()
