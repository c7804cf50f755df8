"""The PyFlink streaming job (``flink run -py jobs/...``); lands with the streaming-job issue."""
