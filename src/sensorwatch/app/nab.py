"""NAB's scoring (the Numenta Anomaly Benchmark), written from its published description.

The rules, as NAB's README and whitepaper state them:

* **Probation.** The first ``min(floor(0.15 * N), 750)`` rows of a series of N rows are for
  learning; detections there are not scored.
* **Windows.** Each labelled anomaly window ``[start, end]`` (timestamps, inclusive) counts
  once: by its *earliest* detection, rewarded by a scaled sigmoid of that row's position in
  the window, ``2 / (1 + exp(5 x)) - 1`` with ``x = -(right - i + 1) / width`` (rows), so +1 at
  the window's start falling towards 0 at its end (normalised so the start earns exactly the
  profile's ``tpWeight``). A window without a detection costs ``fnWeight``.
* **False positives.** Every detection outside a window costs ``fpWeight`` times the same
  sigmoid of its distance after the preceding window, ``x = (i - right) / (width - 1)``, so
  one just after a window costs little and one more than three widths later (or with no
  window before it) costs the full ``fpWeight``.
* **Normalisation.** Raw scores summed over the corpus become
  ``100 * (S - S_null) / (S_perfect - S_null)``: 0 for a detector that never fires, 100 for
  one that detects every window at its first row.

A detection is a row whose anomaly score is at least the threshold; one threshold holds for
the whole corpus. ``bench/nab.py`` and the tests use this module; a test holds it to the
reference figures of the corpus's SOURCE.md.

>>> round(scaled_sigmoid(-1.0), 4), round(scaled_sigmoid(0.0), 4), scaled_sigmoid(3.5)
(0.9866, 0.0, -1.0)
>>> probation_rows(1000), probation_rows(10_000)
(150, 750)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The profiles' cost matrices, as NAB publishes them (a corpus's config/profiles.json wins).
DEFAULT_PROFILES = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11},
}


def scaled_sigmoid(x: float) -> float:
    """NAB's reward curve: ``2 * sigmoid(-5 x) - 1``, and -1 beyond three window widths."""
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_rows(n: int) -> int:
    """Rows a detector may learn on before NAB scores it."""
    return min(math.floor(0.15 * n), 750)


@dataclass(frozen=True)
class Cost:
    """One profile's weights."""

    tp: float
    fn: float
    fp: float


def _ms(stamps) -> np.ndarray:
    return np.asarray(np.asarray(stamps, dtype="datetime64[ms]").astype(np.int64))


@dataclass
class Series:
    """One NAB series: its row times (epoch ms), values and labelled windows (epoch ms, inclusive)."""

    name: str
    ts: np.ndarray
    values: np.ndarray
    windows: list[tuple[int, int]] = field(default_factory=list)

    @property
    def probation(self) -> int:
        return probation_rows(len(self.ts))

    def window_rows(self) -> list[tuple[int, int]]:
        """Each window as (first row, last row) indices; windows without rows are dropped."""
        out = []
        for a, b in self.windows:
            lo, hi = int(np.searchsorted(self.ts, a, "left")), int(np.searchsorted(self.ts, b, "right")) - 1
            if hi >= lo:
                out.append((lo, hi))
        return out


class Corpus:
    """A corpus in NAB's layout: ``data/<category>/<name>.csv`` and ``labels/combined_windows.json``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._windows = json.loads((self.root / "labels" / "combined_windows.json").read_text())
        prof = self.root / "config" / "profiles.json"
        raw = (
            {k: v["CostMatrix"] for k, v in json.loads(prof.read_text()).items()}
            if prof.is_file()
            else DEFAULT_PROFILES
        )
        self.profiles = {k: Cost(v["tpWeight"], v["fnWeight"], v["fpWeight"]) for k, v in raw.items()}

    def names(self) -> list[str]:
        """``<category>/<name>.csv`` of every labelled series that has a data file, sorted."""
        return sorted(n for n in self._windows if (self.root / "data" / n).is_file())

    def series(self, name: str) -> Series:
        import pandas as pd

        df = pd.read_csv(self.root / "data" / name)
        ts = _ms(pd.to_datetime(df["timestamp"]).to_numpy())
        wins = [
            (int(_ms(pd.to_datetime(a).to_datetime64())), int(_ms(pd.to_datetime(b).to_datetime64())))
            for a, b in self._windows[name]
        ]
        return Series(name, ts, df["value"].to_numpy(dtype=np.float64), wins)


def row_scores(s: Series, cost: Cost) -> tuple[np.ndarray, np.ndarray]:
    """(weighted score a detection at each row earns, window index of each row or -1)."""
    n = len(s.ts)
    score = np.full(n, -cost.fp)
    window = np.full(n, -1, dtype=np.int64)
    top = scaled_sigmoid(-1.0)
    rows = s.window_rows()
    for k, (lo, hi) in enumerate(rows):
        width = hi - lo + 1
        for i in range(lo, hi + 1):
            score[i] = cost.tp * scaled_sigmoid(-(hi - i + 1) / width) / top
        window[lo : hi + 1] = k
        end = rows[k + 1][0] if k + 1 < len(rows) else n
        denom = max(width - 1, 1)
        for i in range(hi + 1, end):
            score[i] = cost.fp * scaled_sigmoid((i - hi) / denom)
    return score, window


@dataclass
class FileScore:
    raw: float
    windows: int
    detected_windows: int
    false_positives: int


def score_series(s: Series, detections: np.ndarray, cost: Cost) -> FileScore:
    """NAB's raw score of one series for boolean ``detections`` (one per row)."""
    det = np.asarray(detections, dtype=bool)
    if det.shape != s.ts.shape:
        raise ValueError(f"{s.name}: {det.size} detections for {s.ts.size} rows")
    det = det.copy()
    det[: s.probation] = False
    score, window = row_scores(s, cost)
    n_windows = len(s.window_rows())
    fp = det & (window < 0)
    raw = float(score[fp].sum())
    detected = 0
    for k in range(n_windows):
        hit = np.flatnonzero(det & (window == k))
        if hit.size:
            raw += float(score[hit[0]])  # the earliest detection: the highest reward in the window
            detected += 1
        else:
            raw -= cost.fn
    return FileScore(raw, n_windows, detected, int(fp.sum()))


def normalised(raw: float, windows: int, cost: Cost) -> float:
    """``100 * (S - S_null) / (S_perfect - S_null)`` for ``windows`` labelled windows in all."""
    null, perfect = -cost.fn * windows, cost.tp * windows
    return 100.0 * (raw - null) / (perfect - null)


def score_corpus(series: list[Series], detections: dict[str, np.ndarray], profiles: dict[str, Cost]) -> dict:
    """Normalised score per profile (None without a labelled window), with the counts behind it."""
    out: dict = {}
    parts: list[FileScore] = []
    for name, cost in profiles.items():
        parts = [score_series(s, detections[s.name], cost) for s in series]
        windows = sum(p.windows for p in parts)
        # no labelled window: normalisation is undefined (the false positives below still count)
        out[name] = round(normalised(sum(p.raw for p in parts), windows, cost), 2) if windows else None
    # the counts are the same under every profile: the last profile's parts give them
    out["windows"] = sum(p.windows for p in parts)
    out["detected_windows"] = sum(p.detected_windows for p in parts)
    out["false_positives"] = sum(p.false_positives for p in parts)
    return out


# ------------------------------------------------------------------ the benches' shared parts
#: Detector names of the results files the benches write (NAB forbids ``_`` in them): the
#: alerts as emitted, and the calibrated score for a threshold sweep.
DETECTORS = ("sensorwatch", "sensorwatchScore")
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
PUBLISHED = (
    "published, standard: ARTime 74.9, Numenta HTM 70.1, Random Cut Forest 51.7 (whole corpus); "
    "Numenta HTM 71.36 on this part (SOURCE.md)"
)


def sensor_of(name: str) -> str:
    """The sensor a series replays as: device ``<category>.<name>``, tag ``value``."""
    category, file = name.split("/")
    return f"{category}.{file.removesuffix('.csv')}/value"


def write_results(out: Path, series: list[Series], detections: dict, scores: dict) -> None:
    """NAB results files ``out/<category>/<detector>_<name>`` (``timestamp,value,anomaly_score,label``)."""
    import pandas as pd

    for s in series:
        category, file = s.name.split("/")
        (out / category).mkdir(parents=True, exist_ok=True)
        label = np.zeros(len(s.ts), int)
        for lo, hi in s.window_rows():
            label[lo : hi + 1] = 1
        stamps = pd.to_datetime(s.ts, unit="ms").strftime("%Y-%m-%d %H:%M:%S")
        for det, values in zip(DETECTORS, (detections[s.name].astype(float), scores[s.name])):
            frame = pd.DataFrame({"timestamp": stamps, "value": s.values, "anomaly_score": values, "label": label})
            frame.to_csv(out / category / f"{det}_{file}", index=False)


def print_table(series: list[Series], detections: dict, profiles: dict[str, Cost]) -> dict:
    """Per-category and total figures, printed; returns the total's."""
    print(f"{'category':<24}{'standard':>10}{'low FP':>10}{'low FN':>10}{'windows':>9}{'detected':>9}{'FP':>6}")
    total: dict = {}
    for cat in [*sorted({s.name.split("/")[0] for s in series}), "total"]:
        part = [s for s in series if cat == "total" or s.name.startswith(cat + "/")]
        total = score_corpus(part, detections, profiles)
        figs = "".join(f"{total[p]:>10.2f}" if total[p] is not None else f"{'-':>10}" for p in PROFILES)
        print(f"{cat:<24}{figs}{total['windows']:>9}{total['detected_windows']:>9}{total['false_positives']:>6}")
    print(PUBLISHED)
    return total


def result(total: dict, **extra) -> dict:
    """The benches' JSON line: the three profiles, then detected windows and false incidents
    from ``total`` (:func:`score_corpus`'s), then ``extra``."""
    out = {p: total[p] for p in PROFILES}
    out.update(detected_windows=total["detected_windows"], false_incidents=total["false_positives"], **extra)
    return out
