"""The examples in the docstrings run (River's rule): each module with ``>>>`` examples is listed."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "sensorwatch.core.config",
    "sensorwatch.core.optional",
    "sensorwatch.core.outputs",
    "sensorwatch.core.retry",
    "sensorwatch.serving.flags",
    "sensorwatch.training.calibrate",
    "sensorwatch.app.nab",
    "sensorwatch.core.incidents",
    "sensorwatch.alerting.alerts",
    "sensorwatch.alerting.silences",
    "sensorwatch.app.cli.common",
    "sensorwatch.dashboard.store",
    "sensorwatch.dashboard.chart",
    "sensorwatch.dashboard.app",
    "sensorwatch.serving.server",
    "sensorwatch.core.feedback",
    "sensorwatch.training.fit",
    "sensorwatch.core.prior",
    "sensorwatch.app.demo",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
