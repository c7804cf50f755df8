"""The project's own NAB scorer, held to NAB's reference figures (nab-dev's SOURCE.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sensorwatch.app.nab import Corpus, Cost, Series, score_corpus, score_series
from sensorwatch.core.paths import shared_dir

HTM_THRESHOLD = 0.5421876907348634
REFERENCE = {"standard": 71.36, "reward_low_FP_rate": 64.54, "reward_low_FN_rate": 75.28}
STANDARD = Cost(1.0, 1.0, 0.11)


@pytest.fixture(scope="module")
def corpus():
    root = shared_dir() / "datasets" / "nab-dev"
    c = Corpus(root)
    return root, c, [c.series(n) for n in c.names()]


def test_numenta_htm_detections_score_the_reference_figures(corpus):
    root, c, series = corpus
    assert len(series) == 44 and sum(len(s.window_rows()) for s in series) == 83
    det = {}
    for s in series:
        category, name = s.name.split("/")
        ref = pd.read_csv(root / "reference" / "numenta" / category / f"numenta_{name}")
        assert len(ref) == len(s.ts)
        det[s.name] = ref["anomaly_score"].to_numpy() >= HTM_THRESHOLD
    got = score_corpus(series, det, c.profiles)
    for profile, want in REFERENCE.items():
        assert got[profile] == pytest.approx(want, abs=0.1), (profile, got)


def test_null_and_perfect_detectors_are_0_and_100(corpus):
    _, c, series = corpus
    null = {s.name: np.zeros(len(s.ts), bool) for s in series}
    perfect = {}
    for s in series:
        d = np.zeros(len(s.ts), bool)
        d[[lo for lo, _ in s.window_rows()]] = True
        perfect[s.name] = d
    assert all(v == 0.0 for k, v in score_corpus(series, null, c.profiles).items() if k in REFERENCE)
    assert all(v == 100.0 for k, v in score_corpus(series, perfect, c.profiles).items() if k in REFERENCE)


def _toy() -> Series:
    ts = np.arange(1000, dtype=np.int64) * 300_000
    return Series("toy", ts, np.zeros(1000), [(int(ts[500]), int(ts[549]))])


def test_only_the_earliest_detection_in_a_window_counts_and_earlier_is_better():
    s = _toy()
    early, late, both = (np.zeros(1000, bool) for _ in range(3))
    early[500], late[540] = True, True
    both[[500, 540]] = True
    e, la, b = (score_series(s, d, STANDARD) for d in (early, late, both))
    assert e.raw == pytest.approx(1.0) and 0 < la.raw < e.raw
    assert b.raw == e.raw and b.detected_windows == 1 and b.false_positives == 0


def test_false_positives_cost_more_far_from_a_window_and_probation_is_free():
    s = _toy()
    near, far, before, probation = (np.zeros(1000, bool) for _ in range(4))
    near[551], far[900], before[400], probation[10] = True, True, True, True
    miss = -STANDARD.fn
    assert miss - STANDARD.fp < score_series(s, near, STANDARD).raw - 0 < miss
    assert score_series(s, far, STANDARD).raw == pytest.approx(miss - STANDARD.fp)
    assert score_series(s, before, STANDARD).raw == pytest.approx(miss - STANDARD.fp)  # no window before it
    assert score_series(s, probation, STANDARD).raw == pytest.approx(miss)
