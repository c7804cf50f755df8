"""NAB, offline: the product's trainer and the reference calibration and incident rules, no stream.

For every series of a corpus in NAB's layout (``data/<category>/<name>.csv``,
``labels/combined_windows.json``; by default ``../shared/datasets/nab-dev``):

1. The series is one sensor (device = ``<category>.<name>``, tag ``value``); its rows are
   aggregated into the job's tumbling windows (``--window-s``, default 300: NAB's 5-minute rows).
2. Its model trains on NAB's probationary rows only, ``min(floor(0.15 N), 750)``, through the
   trainer's own code (:func:`sensorwatch.training.fit.prepare` and ``fit_calibrated``, every
   series one group of one stacked detector, as ``sensorwatch train`` does), with the default
   training settings: kind, S, features, threshold rule.
3. Every count window of the whole series is scored in event-time order, and the reference
   rules (:mod:`sensorwatch.core.incidents`, HTM's defaults) calibrate each score against the
   sensor's own past and open and close incidents.
4. ``--out DIR`` writes NAB results files, ``DIR/<category>/<detector>_<name>.csv``
   (``timestamp,value,anomaly_score,label``), for two detectors: ``sensorwatch`` (1 at the row
   where a non-learning incident opened: the alerts as emitted) and ``sensorwatchScore`` (the
   calibrated severity / 100). The project's NAB scorer (:mod:`sensorwatch.app.nab`) scores
   the first, per category and in total.

No setting is chosen per series or from labels: every series runs with the defaults.
This is the development figure of the rules; ``bench/nab.py`` (the replay through the Kafka
broker, the model server and the Flink job) is to give the product's. Ends with one JSON line.

    .venv/bin/python bench/nab_offline.py [--corpus DIR] [--out DIR] [--kind dense_ae]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from sensorwatch.app.nab import Corpus, Series, print_table, result, score_corpus, sensor_of, write_results
from sensorwatch.core.config import Settings
from sensorwatch.core.incidents import IncidentRules, IncidentTracker
from sensorwatch.core.paths import shared_dir
from sensorwatch.core.windows import aggregate_readings, sequences


def raw_scores(corpus: Corpus, settings: Settings) -> tuple[list[Series], list]:
    """Every series' model trained on its probation rows; per series (window ends, raw scores,
    threshold), or None where calibration refused the model (it never alerts)."""
    from sensorwatch.training.fit import fit_calibrated, prepare

    tc, jc = settings.training, settings.job
    window_ms, S = int(jc.window_s * 1000), jc.seq_len
    series = [corpus.series(n) for n in corpus.names()]
    history, full = [], []
    for s in series:
        agg = aggregate_readings(np.full(len(s.ts), sensor_of(s.name)), s.ts, s.values, window_ms)
        (whole,) = agg.values()
        # training sees only the probationary rows (their windows end at or before the last one's)
        history.append(whole.between(None, int(s.ts[s.probation - 1]) // window_ms * window_ms + window_ms + 1))
        full.append(whole)
    data = [prepare(h, [], S, jc.slide, window_ms, tc.validation_split) for h in history]
    cal = fit_calibrated(data, tc, S, use_labels=False)
    out = []
    for g, whole in enumerate(full):
        if cal.errors[g]:
            out.append(None)
            continue
        X, ends = sequences(whole, S, jc.slide, window_ms)
        seed = tuple(cal.detector.calibration.numpy()[g].tolist())
        out.append((ends, cal.detector.score(X, g)[0], cal.thresholds[g], seed))
    return series, out


def run(series: list[Series], scored: list, rules: IncidentRules) -> tuple[dict, dict, dict]:
    """(detections per series, severity / 100 per row, incident counts) under ``rules``."""
    detections, scores, counts = {}, {}, {"incidents": 0, "learning_incidents": 0, "refused": 0}
    for s, one in zip(series, scored):
        det = np.zeros(len(s.ts), bool)
        sev = np.zeros(len(s.ts))
        if one is None:
            counts["refused"] += 1
            detections[s.name], scores[s.name] = det, sev
            continue
        ends, raw, threshold, seed = one
        tracker = IncidentTracker(rules, int(ends[1] - ends[0]) if len(ends) > 1 else 1)
        row = np.searchsorted(s.ts, ends, side="left") - 1  # the last row before the window's end
        for end, r, i in zip(ends.tolist(), raw.tolist(), row.tolist()):
            events = tracker.step(end, r, threshold, seed=seed)
            if i >= 0:
                sev[i] = max(sev[i], tracker.last_severity)
            for e in events:
                if e.event == "opened":
                    counts["learning_incidents" if e.learning else "incidents"] += 1
                    if not e.learning and i >= 0:
                        det[i] = True
        detections[s.name], scores[s.name] = det, sev / 100.0
    return detections, scores, counts


def sweep(series: list[Series], scored: list, corpus: Corpus) -> dict[str, float]:
    """NAB standard for the rules' settings around the defaults, on the same raw scores."""
    out = {}
    for horizon, short, tail in itertools.product((864, 2000, 8640), (1, 5, 10), (1e-3, 1e-4, 1e-5, 1e-6)):
        rules = IncidentRules(horizon_windows=horizon, short_windows=short, alert_tail=tail)
        got = score_corpus(series, run(series, scored, rules)[0], corpus.profiles)["standard"]
        out[f"{horizon}/{short}/{tail:g}"] = got
        print(f"sweep: history {horizon:>5} evidence {short:>2} tail {tail:<6g} standard {got:7.2f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None, help="NAB layout; default ../shared/datasets/nab-dev")
    ap.add_argument("--out", type=Path, default=None, help="write NAB results files here")
    ap.add_argument("--window-s", type=float, default=300.0, help="tumbling window (NAB's rows are 5 minutes)")
    ap.add_argument("--kind", default=None, help="model kind (default: the configuration's)")
    ap.add_argument("--sweep", action="store_true", help="also score the rules' settings around the defaults")
    args = ap.parse_args()
    t0 = time.time()
    corpus = Corpus(args.corpus or shared_dir() / "datasets" / "nab-dev")
    settings = Settings()
    settings.job.window_s = args.window_s
    if args.kind:
        settings.training.kind = args.kind
    rules = IncidentRules()
    series, scored = raw_scores(corpus, settings)
    detections, scores, counts = run(series, scored, rules)
    if args.out:
        write_results(args.out, series, detections, scores)
    readings = sum(len(s.ts) for s in series)
    print(
        f"NAB offline: {len(series)} series, {readings:,} rows, kind {settings.training.kind}, "
        f"S {settings.job.seq_len}, {rules}"
    )
    total = print_table(series, detections, corpus.profiles)
    swept = sweep(series, scored, corpus) if args.sweep else {}
    if swept:
        print(f"sweep: standard from {min(swept.values()):.2f} to {max(swept.values()):.2f} over {len(swept)} settings")
    figures = result(
        total,
        incidents=counts["incidents"],
        learning_incidents=counts["learning_incidents"],
        refused_models=counts["refused"],
        readings=readings,
        seconds=round(time.time() - t0, 1),
    )
    if swept:
        figures.update(sweep_min=min(swept.values()), sweep_max=max(swept.values()))
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
