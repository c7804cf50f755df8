"""``bench/nab.py`` on a slice of NAB (three series): the real broker, the model server and the
job, scored by the project's NAB scorer; and on one series with the lifecycle on. The whole
corpus runs as the benchmark."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sensorwatch.app.nab import DETECTORS, Corpus
from sensorwatch.core.paths import REPO, shared_dir

pytestmark = pytest.mark.integration  # its own broker, model server and Flink mini-cluster

#: three short series of two categories with five labelled windows among them
SLICE = [
    "artificialWithAnomaly/art_increase_spike_density.csv",
    "realAdExchange/exchange-3_cpm_results.csv",
    "realAdExchange/exchange-4_cpc_results.csv",
]


def test_a_slice_of_nab_through_the_stream(tmp_path):
    corpus = Corpus(shared_dir() / "datasets" / "nab-dev")
    cmd = [sys.executable, str(REPO / "bench" / "nab.py"), "--names", *SLICE, "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = sum(len(corpus.series(n).ts) for n in SLICE)
    # every row replayed and accounted for, every window scored
    assert result["readings"] == rows and result["windows_without_record"] == 0 and result["late_readings"] == 0
    # the job's incidents are the reference rules' on the job's own scores, incident for incident
    assert result["incidents"] > 0 and result["reference_mismatches"] == 0
    assert result["incident_records"] <= 2 * (result["incidents"] + result["learning_incidents"])
    # scored by the project's scorer: a figure per profile, and at least one window found
    assert all(isinstance(result[p], float) for p in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"))
    assert result["detected_windows"] >= 2
    # NAB results files for both detectors, one row per data row
    for name in SLICE:
        category, file = name.split("/")
        for det in DETECTORS:
            lines = (tmp_path / category / f"{det}_{file}").read_text().splitlines()
            assert lines[0] == "timestamp,value,anomaly_score,label" and len(lines) == len(corpus.series(name).ts) + 1


def test_one_series_with_the_lifecycle_on_beside_its_static_twin():
    """``--lifecycle``: the replay in steps of a day, a lifecycle pass after each, and the same
    models without it in a child process. Versions change mid-stream (promotions), and still
    every window has its record and the job's incidents are the reference rules' on the job's
    own scores, each version's records from that version's seed."""
    name = "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv"
    rows = len(Corpus(shared_dir() / "datasets" / "nab-dev").series(name).ts)
    cmd = [sys.executable, str(REPO / "bench" / "nab.py"), "--names", name, "--lifecycle"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    static = result["static"]
    assert result["readings"] == static["readings"] == rows
    assert result["windows_without_record"] == static["windows_without_record"] == 0
    assert result["late_readings"] == static["late_readings"] == 0, "a replay in timestamp order has no late row"
    assert result["promoted"] >= 1 and result["promoted"] + result["rejected"] >= 2, result
    assert "stable (" in done.stdout and "step " in done.stdout, "each verdict is printed at its step"
    assert result["reference_mismatches"] == static["reference_mismatches"] == 0
    assert result["standard_gain"] == round(result["standard"] - static["standard"], 2)
