"""Shared fixtures: one real Kafka broker per test session, on free loopback ports.

A test is ``integration`` (real parts) when its module says so, or when it uses one of the
fixtures below that start real parts; ``pytest -m "not integration"`` runs the rest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from sensorwatch.core.config import Settings
from sensorwatch.stack import LocalStack
from sensorwatch.stack.topics import HISTORICAL, ensure_topics

#: Fixtures that start real parts: a test using any of them is an integration test.
REAL_PART_FIXTURES = frozenset({"kafka_stack", "settings", "world", "repo", "server"})


def pytest_configure(config) -> None:
    # before any test starts PyFlink's JVM (its classpath is fixed then): the mini-cluster's
    # Prometheus reporter, which the product puts there before its own first job
    from sensorwatch.jobs.pipeline import reporter_on_gateway_classpath

    reporter_on_gateway_classpath()


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if REAL_PART_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test starts from the session's environment variables.

    A job on the in-process mini-cluster runs its Python workers in this very process
    (PyFlink's loopback mode), and PyFlink's worker pool writes the workers' environment into
    ``os.environ`` (``PYFLINK_GATEWAY_DISABLED``, ``FLINK_HOME``, ``JAVA_HOME`` as the JVM saw
    it, ...). A later test that starts ``sensorwatch`` or a bench as a subprocess inherited that
    and failed: "launching the PythonGatewayServer during Python UDF execution", or "no such
    file: bin/java" (a CI run that had the demo's in-process job before them)."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def kafka_stack(tmp_path_factory):
    """A real Apache Kafka broker (KRaft) started by the project's own stack code."""
    settings = Settings()
    settings.stack.work_dir = tmp_path_factory.mktemp("stack")
    settings.stack.kafka_port = 0
    settings.stack.controller_port = 0
    # Kafka checks time-based retention every 5 minutes; a test writing years-old event times
    # to a topic that is not HISTORICAL lost them at whichever check fell mid-test (1 run in
    # ~20). Checked every second, such a test loses them every time.
    settings.stack.kafka_properties = {"log.retention.check.interval.ms": "1000"}
    stack = LocalStack(settings)
    info = stack.up()
    yield stack, info
    stack.down()


@pytest.fixture
def settings(kafka_stack) -> Settings:
    """Settings pointing at the session broker, with topic names unique to this test.

    The topics are :data:`HISTORICAL`: these tests write fixed event times (2023), and the
    broker's time-based retention (checked every second here, see ``kafka_stack``) would delete
    them mid-test (with Kafka's 5-minute check, a lifecycle test once trained on the second half
    of its history)."""
    stack, info = kafka_stack
    s = Settings()
    s.stack.work_dir = stack.settings.stack.work_dir
    s.kafka.bootstrap_servers = info["bootstrap_servers"]
    suffix = uuid.uuid4().hex[:8]
    for name in type(s.kafka.topics).model_fields:
        setattr(s.kafka.topics, name, f"{getattr(s.kafka.topics, name)}.{suffix}")
    ensure_topics(s, HISTORICAL)
    return s


@pytest.fixture(scope="session")
def world(kafka_stack, tmp_path_factory):
    """Models trained on a simulated fleet's clean history (packed layout), served by the real
    model server in a child process; shared by the job and scorer tests (training takes ~20 s)."""
    from jobworld import build_world

    _, info = kafka_stack
    s, server = build_world(info["bootstrap_servers"], tmp_path_factory.mktemp("world"))
    yield s
    server.stop()


@pytest.fixture
def cert(tmp_path):
    """A self-signed certificate for localhost and 127.0.0.1, made by openssl: (crt, key)."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test certificate"
    key, crt = tmp_path / "server.key", tmp_path / "server.crt"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    return crt, key
