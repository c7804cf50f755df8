"""The loopback Python worker's hang-up at a job's end is logged, not printed as a crash.

A real gRPC stream, closed by its server with the status the JVM sends the worker
(CANCELLED, "Multiplexer hanging up"), read by a thread named as Beam's reader."""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
import pytest

from sensorwatch.jobs.pipeline import worker_hangup_hook


@pytest.fixture
def hanging_up():
    """A channel to a server whose one stream method closes every stream as the JVM does."""

    def data(requests, context):
        context.abort(grpc.StatusCode.CANCELLED, "Multiplexer hanging up")
        yield b""  # never reached: makes this a stream handler

    handler = grpc.method_handlers_generic_handler(
        "org.apache.beam.model.fn_execution.v1.BeamFnData", {"Data": grpc.stream_stream_rpc_method_handler(data)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel.stream_stream("/org.apache.beam.model.fn_execution.v1.BeamFnData/Data")
    channel.close()
    server.stop(0)


def _read_in_thread(stream, name: str, hook) -> None:
    """Read the stream to its end in a thread called ``name``, as Beam's reader does, with
    ``hook`` as the process's thread exception hook."""
    before = threading.excepthook
    threading.excepthook = hook
    try:
        t = threading.Thread(target=lambda: list(stream(iter([b"x"]))), name=name)
        t.start()
        t.join(30)
        assert not t.is_alive()
    finally:
        threading.excepthook = before


def test_the_jvm_hanging_up_is_logged_not_passed_on(hanging_up, caplog):
    passed_on = []
    with caplog.at_level(logging.INFO, logger="sensorwatch.job"):
        _read_in_thread(hanging_up, "read_grpc_client_inputs", worker_hangup_hook(passed_on.append))
    assert passed_on == []
    assert any("Multiplexer hanging up" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)


def test_anything_else_still_reaches_the_previous_hook(hanging_up):
    """The same error in another thread, and another error in Beam's reader, are not hidden."""
    passed_on = []
    hook = worker_hangup_hook(passed_on.append)
    _read_in_thread(hanging_up, "some-other-thread", hook)
    assert len(passed_on) == 1 and passed_on[0].exc_value.code() == grpc.StatusCode.CANCELLED

    def broken(_requests):
        raise ValueError("a real failure")

    _read_in_thread(broken, "read_grpc_client_inputs", hook)
    assert len(passed_on) == 2 and isinstance(passed_on[1].exc_value, ValueError)
