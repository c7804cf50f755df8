"""Model serving: a TF-Serving-compatible gRPC server, the model repository, and the client.

``sensorwatch.serving.server`` needs TensorFlow; ``sensorwatch.serving.client``, ``sensorwatch.serving.tensors`` and
``sensorwatch.serving.repository`` do not (the Flink workers import them).
"""
