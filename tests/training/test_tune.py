from __future__ import annotations

import pytest
from trainhelpers import history, train_settings

from sensorwatch.simulate.history import label_intervals
from sensorwatch.training.tune import tune

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml


def test_tune_searches_and_reports_the_best_parameters(tmp_path):
    s = train_settings(tmp_path, epochs=2)
    hist, labels = history(s, anomalies_per_hour=3.0)
    res = tune(hist, s, trials=3, labels=label_intervals(labels), seq_lens=(8, 16))
    assert res["trials"] == 3
    assert set(res["best_params"]) == {"seq_len", "learning_rate", "hidden", "latent"}
    assert res["best_params"]["seq_len"] in (8, 16)
    assert -1.0 <= res["best_value"] <= 0.0  # minus an F1
