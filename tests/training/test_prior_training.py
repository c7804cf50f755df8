"""Training the fleet priors: which tags get one, what each is trained on, and that a prior
whose data has not changed is not trained again."""

from __future__ import annotations

import numpy as np
from trainhelpers import history, train_settings

from sensorwatch.core.prior import normalise_series, prior_model_name
from sensorwatch.core.windows import sequences
from sensorwatch.serving.repository import ModelRepository, read_report
from sensorwatch.training.prior import prepare_prior, prior_groups
from sensorwatch.training.trainer import summary, train_fleet


def test_one_prior_per_tag_published_registered_and_resumable(tmp_path):
    s = train_settings(tmp_path, prior=True, epochs=3)
    s.simulator.devices = 3
    hist, _ = history(s)
    first = train_fleet(hist, s, progress=False)
    out = summary(first)
    assert (out["trained"], out["priors"], out["failed"]) == (9, 3, 0), out
    repo = ModelRepository(s.serving.model_base_path)
    tags = s.simulator.tags
    assert {prior_model_name(t) for t in tags} <= {e.name for e in repo.read_config()}, "served by name"
    for t in tags:
        rep = read_report(repo.model_dir(prior_model_name(t)) / "1")
        assert rep["layout"] == "prior" and rep["tag"] == t
        assert rep["trained_on"] == [f"dev-000{i}/{t}" for i in range(3)]
        mine = rep["sensors"][f"*/{t}"]
        assert mine["threshold"] > 0 and mine["windows_train"] >= s.training.min_windows
        assert len(mine["loss_curve"]) == s.training.epochs
    # the same data and settings: skipped, nothing new published
    again = [o for o in train_fleet(hist, s, progress=False) if o.prior]
    assert {o.status for o in again} == {"skipped"} and all(repo.versions(prior_model_name(t)) == [1] for t in tags)


def test_which_tags_get_a_prior_and_what_it_is_trained_on(tmp_path):
    s = train_settings(tmp_path, prior=True)
    s.simulator.devices, s.simulator.pumps = 2, 1
    s.serving.device_models = "pump-*"
    hist, _ = history(s)
    groups = prior_groups(hist, s)
    # the pump is scored as a device; each plain tag has two sensors; min_sensors 2
    assert groups == {t: [f"dev-0000/{t}", f"dev-0001/{t}"] for t in s.simulator.tags}
    s.prior.min_sensors = 3
    assert prior_groups(hist, s) == {}
    # the pooled windows: each sensor's own normalised windows, training before validation
    s.prior.min_sensors, s.prior.max_windows = 2, 500
    sensors = [hist[x] for x in groups["temperature"]]
    d = prepare_prior(sensors, s)
    assert len(d.train) == 500, "at most prior.max_windows, taken evenly"
    X, _ = sequences(sensors[0], s.job.seq_len)
    tail = normalise_series(X)[-int(len(X) * s.training.validation_split) - 1 :]
    for v in d.val[:3]:  # the first sensor's come first
        assert any(np.allclose(v, z, atol=1e-6) for z in tail), "validation: the end of each sensor's history"
    assert abs(float(d.train[..., 0].mean())) < 0.5, "levels of 20-80 vanish: each sensor is centred on its own"
