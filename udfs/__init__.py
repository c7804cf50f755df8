"""What the streaming job's Python workers run (batched gRPC scoring); lands with the streaming-job issue."""
