"""The simulator: determinism, delivery order, and ground truth that matches the data."""

import numpy as np
import pytest

from sensorwatch.core.config import SimulatorConfig
from sensorwatch.simulate import Fleet


def _cfg(**kw):
    base = dict(devices=4, duration_s=3600, anomaly_rate_per_hour=3.0, seed=7, out_of_order_rate=0.0)
    base.update(kw)
    return SimulatorConfig(**base)


def _collect(fleet):
    blocks = list(fleet.blocks())
    return {
        f: np.concatenate([getattr(b, f) for b in blocks]) for f in ("sensor_idx", "ts", "emit_ts", "value", "late")
    }


def test_same_seed_same_everything():
    a, b = Fleet(_cfg(), now_ms=10**12), Fleet(_cfg(), now_ms=10**12)
    assert a.labels == b.labels
    ra, rb = _collect(a), _collect(b)
    for k in ra:
        np.testing.assert_array_equal(ra[k], rb[k])
    c = Fleet(_cfg(seed=8), now_ms=10**12)
    assert c.labels != a.labels


def test_delivery_order_and_lateness():
    f = Fleet(_cfg(out_of_order_rate=0.05, late_rate=0.01, late_by_s=120), now_ms=10**12)
    r = _collect(f)
    assert np.all(np.diff(r["emit_ts"]) >= 0), "readings must be delivered in send-time order"
    late = r["late"]
    assert 0.005 < late.mean() < 0.02
    np.testing.assert_array_equal(r["emit_ts"][late] - r["ts"][late], 120_000)
    ooo = (r["emit_ts"] > r["ts"]) & ~late
    assert ooo.mean() > 0.02 and np.all(r["emit_ts"][ooo] - r["ts"][ooo] <= 2000)


def test_every_kind_injected_and_labels_within_range():
    f = Fleet(_cfg(devices=10, anomaly_rate_per_hour=4.0), now_ms=10**12)
    kinds = {lab.kind for lab in f.labels}
    assert kinds == {"spike", "level_shift", "drift", "stuck", "noise_burst", "dropout"}
    for lab in f.labels:
        assert f.start_ms + 300_000 <= lab.start < lab.end <= f.end_ms
        assert 60_000 <= lab.end - lab.start <= 180_000
    by_sensor = {}
    for lab in f.labels:
        by_sensor.setdefault(lab.sensor, []).append(lab)
    for labs in by_sensor.values():
        labs.sort(key=lambda x: x.start)
        for x, y in zip(labs, labs[1:]):
            assert y.start >= x.end, "events of one sensor must not overlap"


@pytest.mark.parametrize("kind", ["spike", "level_shift", "drift", "stuck", "noise_burst", "dropout"])
def test_labels_match_what_was_injected(kind):
    """Against the same seed without anomalies: readings differ exactly inside the labels.

    The normal signal has its own random stream, so the anomaly-free fleet is the true
    counterfactual: outside every label the two agree bit for bit; inside, the difference
    has the labelled kind's signature.
    """
    cfg = _cfg(devices=6, anomaly_kinds=[kind], anomaly_rate_per_hour=3.0)
    f = Fleet(cfg, now_ms=10**12)
    clean = Fleet(cfg.model_copy(update={"anomaly_rate_per_hour": 0.0}), now_ms=10**12)
    assert f.labels and not clean.labels
    r, c = _collect(f), _collect(clean)
    normal = {(int(i), int(t)): v for i, t, v in zip(c["sensor_idx"], c["ts"], c["value"])}
    seen = {(int(i), int(t)): v for i, t, v in zip(r["sensor_idx"], r["ts"], r["value"])}

    def label_of(i, t):
        for lab in f.labels:
            if lab.sensor == f.sensors[i] and lab.start <= t < lab.end:
                return lab
        return None

    for key, v in seen.items():
        if label_of(*key) is None:
            assert v == normal[key], f"reading outside every label was changed: {key}"
    for key in normal:
        if label_of(*key) is None:
            assert key in seen, f"reading outside every label went missing: {key}"

    for lab in f.labels:
        i = f.sensors.index(lab.sensor)
        keys = [k for k in normal if k[0] == i and lab.start <= k[1] < lab.end]
        got = np.array([seen.get(k, np.nan) for k in keys])
        base = np.array([normal[k] for k in keys])
        diff = got - base
        noise = f.noise[i]
        if kind == "dropout":
            assert np.isnan(got).mean() > 0.65
            np.testing.assert_array_equal(got[~np.isnan(got)], base[~np.isnan(got)])
            continue
        assert not np.isnan(got).any()
        if kind == "stuck":
            assert np.ptp(got) == 0 and np.ptp(base) > 0
        elif kind == "level_shift":
            assert np.all(np.abs(diff) >= 0.6 * f.range[i] - 1e-9) and np.ptp(diff) < 1e-9
        elif kind == "drift":
            assert abs(diff[-1]) >= 0.75 * f.range[i] and abs(diff[0]) < 0.05 * f.range[i]
            assert np.all(np.diff(np.abs(diff)) >= -1e-9), "a drift grows monotonically"
        elif kind == "noise_burst":
            assert np.std(diff) > 3 * noise
        elif kind == "spike":
            spikes = np.abs(diff) > 0
            assert 0.02 < spikes.mean() < 0.25
            assert np.all(np.abs(diff[spikes]) >= 8 * noise - 1e-9)


def test_pump_tags_follow_one_load_and_a_decouple_breaks_only_the_relation():
    """A decoupled tag stays inside its own normal range (a model of that tag alone sees nothing
    out of the ordinary) while it stops following the pump's other tags; the label names the
    device and the tag."""
    from sensorwatch.simulate.fleet import PUMP_TAGS

    cfg = _cfg(devices=1, pumps=3, relation_faults_per_hour=3.0, anomaly_rate_per_hour=0.0, duration_s=7200)
    faulty, clean = (
        Fleet(cfg, now_ms=10**12),
        Fleet(cfg.model_copy(update={"relation_faults_per_hour": 0.0}), now_ms=10**12),
    )
    labels = [lab for lab in faulty.labels if lab.kind == "decouple"]
    assert len(labels) >= 6 and all(lab.device.startswith("pump-") and lab.tags for lab in labels)
    assert {lab.to_dict()["device"] for lab in labels} <= set(faulty.pumps)
    assert not [lab for lab in faulty.labels if lab.sensor.startswith("dev-")], "plain devices: their own kinds only"
    rf, rc = _collect(faulty), _collect(clean)
    np.testing.assert_array_equal(rf["ts"], rc["ts"])
    names = np.asarray(faulty.sensors)
    for lab in labels:
        me = names[rf["sensor_idx"]] == lab.sensor
        inside = me & (rf["ts"] >= lab.start) & (rf["ts"] < lab.end)
        normal = rc["value"][names[rc["sensor_idx"]] == lab.sensor]
        lo, hi = np.quantile(normal, [0.0, 1.0])
        span = hi - lo
        assert (rf["value"][inside] >= lo - 0.05 * span).all() and (rf["value"][inside] <= hi + 0.05 * span).all()
        assert np.abs(rf["value"][inside] - rc["value"][inside]).max() > 0.1 * span, "the tag left its load"
        others = [f"{lab.device}/{t}" for t in PUMP_TAGS if t != lab.tags[0]]
        for o in others:
            m = (names[rf["sensor_idx"]] == o) & (rf["ts"] >= lab.start) & (rf["ts"] < lab.end)
            np.testing.assert_array_equal(rf["value"][m], rc["value"][m])
    # outside faults the tags move together: flow and speed of a pump are proportional
    p = faulty.pumps[0]
    flow = rc["value"][names[rc["sensor_idx"]] == f"{p}/flow"]
    speed = rc["value"][names[rc["sensor_idx"]] == f"{p}/speed"]
    assert np.corrcoef(flow, speed)[0, 1] > 0.95
