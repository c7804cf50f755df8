"""The model server's command line, built from the configuration's ``serving`` section.

Flags are tensorflow_model_server's (``--port``, ``--model_config_file``, ...), so the same
list starts ``sensorwatch serve`` here and documents what tensorflow/serving is given in the
compose cluster. ``sensorwatch serve`` and the embedded harness both build it here.

>>> from sensorwatch.core.config import ServingConfig
>>> server_argv(ServingConfig(port=9000), ["--port", "8501"])[:2]
['--port', '8501']
>>> "--model_config_file" in server_argv(ServingConfig())
True
"""

from __future__ import annotations

from collections.abc import Sequence

from sensorwatch.core.config import ServingConfig


def _given(argv: Sequence[str], *flags: str) -> bool:
    return any(a == f or a.startswith(f + "=") for a in argv for f in flags)


def server_argv(sv: ServingConfig, given: Sequence[str] = ()) -> list[str]:
    """``given`` flags first, then every flag of ``sv`` that ``given`` does not already set."""
    argv = list(given)
    if not _given(argv, "--port"):
        argv += ["--port", str(sv.port)]
    if not _given(argv, "--host"):
        argv += ["--host", sv.host]
    if not _given(argv, "--model_config_file", "--model_name"):
        argv += [
            "--model_config_file",
            str(sv.config_file),
            "--model_config_file_poll_wait_seconds",
            str(sv.poll_wait_s),
        ]
    if not _given(argv, "--file_system_poll_wait_seconds"):
        argv += ["--file_system_poll_wait_seconds", str(sv.poll_wait_s)]
    if sv.metrics_port is not None and not _given(argv, "--rest_api_port"):
        argv += ["--rest_api_port", str(sv.metrics_port)]
    if sv.tls_cert and sv.tls_key and not _given(argv, "--ssl_cert"):
        argv += ["--ssl_cert", str(sv.tls_cert), "--ssl_key", str(sv.tls_key)]
    return argv
