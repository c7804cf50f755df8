"""Model serving: a TF-Serving-compatible gRPC server, the model repository, and the client.

``serving.server`` needs TensorFlow; ``serving.client``, ``serving.tensors`` and
``serving.repository`` do not (the Flink workers import them).
"""
