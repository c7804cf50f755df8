"""A user's client, built only from tensorflow_serving.apis protos and stubs.

Exactly what one writes against the official tensorflow/serving image: if this passes
against our server, the job's requests are the ones tensorflow/serving accepts too.
"""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from savedmodels import S
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def test_user_client_with_official_protos(server):
    channel = grpc.insecure_channel(server.target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    windows = np.linspace(0, 20, 3 * S, dtype=np.float32).reshape(3, S)

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "pump"
    request.model_spec.signature_name = "serving_default"
    request.inputs["values"].CopyFrom(tf.make_tensor_proto(windows))
    response = stub.Predict(request, 10.0)
    score = tf.make_ndarray(response.outputs["score"])
    expected = np.mean(((windows - 10.0) / 2.0) ** 2, axis=1)
    np.testing.assert_allclose(score, expected, rtol=1e-5)
    assert tf.make_ndarray(response.outputs["is_anomaly"]).dtype == bool
    assert response.model_spec.version.value == 1

    # float_val form, as older clients send it
    request.inputs["values"].Clear()
    request.inputs["values"].dtype = tf.float32.as_datatype_enum
    request.inputs["values"].tensor_shape.dim.add(size=3)
    request.inputs["values"].tensor_shape.dim.add(size=S)
    request.inputs["values"].float_val.extend(windows.reshape(-1).tolist())
    np.testing.assert_allclose(tf.make_ndarray(stub.Predict(request, 10.0).outputs["score"]), expected, rtol=1e-5)

    meta = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    meta.model_spec.name = "pump"
    resp = stub.GetModelMetadata(meta, 10.0)
    sigmap = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(sigmap)
    assert "serving_default" in sigmap.signature_def

    mstub = model_service_pb2_grpc.ModelServiceStub(channel)
    st = get_model_status_pb2.GetModelStatusRequest()
    st.model_spec.name = "pump"
    status = mstub.GetModelStatus(st, 10.0)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ]
    channel.close()
