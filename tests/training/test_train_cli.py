"""``sensorwatch train`` end to end through the CLI, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sensorwatch.serving.repository import ModelRepository

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "SENSORWATCH__SERVING__MODEL_BASE_PATH": str(tmp_path / "models"),
        "SENSORWATCH__SIMULATOR__DEVICES": "1",
        "SENSORWATCH__SIMULATOR__DURATION_S": "5400",
        "SENSORWATCH__SIMULATOR__START_MS": "1700000000000",
    }
    return subprocess.run(
        [sys.executable, "-m", "sensorwatch", "train", "--quiet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_train_from_the_simulated_history_then_resume(tmp_path):
    r = _run(
        tmp_path, "--source", "simulate", "--epochs", "2", "--workers", "1", "--sensors", "*/temperature,*/pressure"
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["trained"] == 2 and out["failed"] == 0
    assert ModelRepository(tmp_path / "models").models() == ["dev-0000~pressure", "dev-0000~temperature"]
    again = json.loads(
        _run(
            tmp_path, "--source", "simulate", "--epochs", "2", "--workers", "1", "--sensors", "*/temperature,*/pressure"
        ).stdout
    )
    assert again["skipped"] == 2 and again["trained"] == 0


def test_train_reports_a_bad_source(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    r = _run(tmp_path, "--source", str(bad))
    assert r.returncode == 2 and "cannot read" in r.stderr and "neither aggregates" in r.stderr
    assert "Traceback" not in r.stderr
