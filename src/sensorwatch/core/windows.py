"""Count windows of S consecutive tumbling aggregates: one definition for training and scoring.

The streaming job forms its count windows in Flink SQL (``count_window(...) OVER (PARTITION BY
sensor ORDER BY window_time ROWS S-1 PRECEDING)``) and the trainer forms them here from the
aggregates topic. Both follow the rules below, and ``tests/jobs/test_count_windows.py`` feeds
the same aggregates through both and requires equal windows:

* a window is S *consecutive aggregates of one sensor* in event-time order; a gap in time (no
  readings in a tumbling window) does not break a window, exactly like ``ROWS`` in SQL;
* the first window of a sensor ends at its S-th aggregate;
* with slide k > 1, a window is kept when ``(window_end // window_ms) % k == 0``: a rule on
  event time, so a restarted job and the trainer keep the same windows.

This module is imported by the Flink workers, so it uses numpy only.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

#: Per tumbling window: the mean (the window's value), the population standard deviation
#: and the number of readings. They are also the serving signature's input names, each [N, S].
FEATURES: tuple[str, ...] = ("values", "stddev", "count")


def feature_columns(names) -> list[int]:
    """Where each of ``names`` (a subset of :data:`FEATURES`, say ``training.device_features``)
    sits in a window's feature axis as the job sends it."""
    return [FEATURES.index(f) for f in names]


def _ends_between(window_end: np.ndarray, ts_from: int | None, ts_to: int | None) -> np.ndarray:
    """Which window ends lie in [ts_from, ts_to) (None: unbounded on that side)."""
    m = np.ones(window_end.size, dtype=bool)
    if ts_from is not None:
        m &= window_end >= ts_from
    if ts_to is not None:
        m &= window_end < ts_to
    return m


@dataclass
class SensorSeries:
    """One sensor's tumbling aggregates in event-time order (columns)."""

    sensor: str
    window_end: np.ndarray  # int64 ms, ascending
    mean: np.ndarray
    stddev: np.ndarray
    count: np.ndarray

    def __post_init__(self) -> None:
        self.window_end = np.asarray(self.window_end, dtype=np.int64)
        self.mean, self.stddev, self.count = (
            np.asarray(a, dtype=np.float64) for a in (self.mean, self.stddev, self.count)
        )
        n = self.window_end.size
        if not (self.mean.size == self.stddev.size == self.count.size == n):
            raise ValueError(f"{self.sensor}: columns differ in length")
        if n > 1 and np.any(np.diff(self.window_end) <= 0):
            raise ValueError(f"{self.sensor}: window_end must be strictly ascending")

    def __len__(self) -> int:
        return int(self.window_end.size)

    def features(self) -> np.ndarray:
        """[T, F] in the order of :data:`FEATURES`."""
        return np.stack([self.mean, self.stddev, self.count], axis=-1)

    def between(self, ts_from: int | None, ts_to: int | None) -> SensorSeries:
        """Aggregates whose window ends in [ts_from, ts_to)."""
        m = _ends_between(self.window_end, ts_from, ts_to)
        return SensorSeries(self.sensor, self.window_end[m], self.mean[m], self.stddev[m], self.count[m])


def aggregate_readings(
    sensor: np.ndarray, ts: np.ndarray, value: np.ndarray, window_ms: int
) -> dict[str, SensorSeries]:
    """Tumbling mean / population stddev / count per sensor: the job's TUMBLE, in numpy.

    A reading at ts belongs to the window [floor(ts / w) * w, + w); the window's end is the
    aggregate's timestamp. Windows without readings produce no aggregate, as in Flink.
    """
    sensor = np.asarray(sensor)
    ts = np.asarray(ts, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    out: dict[str, SensorSeries] = {}
    names, inv = np.unique(sensor, return_inverse=True)
    win = ts // window_ms
    order = np.lexsort((win, inv))
    inv, win, value = inv[order], win[order], value[order]
    brk = np.flatnonzero(np.diff(inv) | np.diff(win)) + 1
    starts = np.concatenate([[0], brk])
    count = np.diff(np.concatenate([starts, [inv.size]]))
    s1 = np.add.reduceat(value, starts)
    s2 = np.add.reduceat(value * value, starts)
    mean = s1 / count
    # two-pass would be exact; this matches STDDEV_POP to ~1e-9 relative at sensor magnitudes
    sd = np.sqrt(np.maximum(s2 / count - mean * mean, 0.0))
    grp = inv[starts]
    for g in np.unique(grp):
        m = grp == g
        out[str(names[g])] = SensorSeries(str(names[g]), (win[starts][m] + 1) * window_ms, mean[m], sd[m], count[m])
    return out


def keep_window(window_end: np.ndarray | int, slide: int, window_ms: int) -> np.ndarray | bool:
    """The slide rule: keep windows whose end is a multiple of ``slide`` tumbling windows."""
    if slide == 1:
        return np.ones(np.shape(window_end), dtype=bool) if np.ndim(window_end) else True
    return (np.asarray(window_end) // window_ms) % slide == 0


def sequences(
    series: SensorSeries, seq_len: int, slide: int = 1, window_ms: int = 5000
) -> tuple[np.ndarray, np.ndarray]:
    """All count windows of a series: (X [N, S, F] float32, window ends [N] int64)."""
    feats = series.features()
    if len(series) < seq_len:
        return np.empty((0, seq_len, len(FEATURES)), np.float32), np.empty(0, np.int64)
    X = np.lib.stride_tricks.sliding_window_view(feats, seq_len, axis=0).transpose(0, 2, 1)
    ends = series.window_end[seq_len - 1 :]
    keep = keep_window(ends, slide, window_ms)
    return np.ascontiguousarray(X[keep], dtype=np.float32), ends[keep]


def model_name(sensor: str, layout: str = "per-sensor", groups: int = 8) -> str:
    """The TF Serving model that scores ``sensor``.

    per-sensor: ``device~tag`` (``/`` is not allowed in a model name); packed: ``packed-NNN``
    by a stable hash (CRC-32), so the trainer and every job worker agree without a lookup.
    """
    if layout == "packed":
        return f"packed-{zlib.crc32(sensor.encode()) % groups:03d}"
    if layout != "per-sensor":
        raise ValueError(f"unknown layout {layout!r}")
    return sensor.replace("/", "~")


def sensor_of_model(name: str) -> str:
    """Inverse of :func:`model_name` for the per-sensor layout."""
    return name.replace("~", "/")


# ------------------------------------------------------------------------------ device windows
#: A device model's input per step: every feature of every tag, tag-major (tag 0's values,
#: stddev, count, then tag 1's, ...). A tag without a reading in a step is missing (NaN) there.


@dataclass
class DeviceSeries:
    """One device's tumbling aggregates, every tag side by side: the device model's rule.

    Step t is a tumbling window in which *at least one* of the device's tags had a reading
    (the job's device vectors are made from the aggregates that exist, so a window in which
    the whole device was silent makes no step, as a silent sensor makes none). ``tags`` is the
    fixed column order, sorted; ``feats[t, c]`` holds tag c's :data:`FEATURES` at step t, NaN
    where the tag had no reading in that window (imputed by the model and masked out of its error).
    """

    device: str
    tags: list[str]
    window_end: np.ndarray  # int64 ms [T], ascending
    feats: np.ndarray  # float64 [T, C, F], NaN where a tag is missing

    def __len__(self) -> int:
        return int(self.window_end.size)

    def between(self, ts_from: int | None, ts_to: int | None) -> DeviceSeries:
        """Steps whose window ends in [ts_from, ts_to)."""
        m = _ends_between(self.window_end, ts_from, ts_to)
        return DeviceSeries(self.device, list(self.tags), self.window_end[m], self.feats[m])


def device_of(sensor: str) -> str:
    return sensor.partition("/")[0]


def device_series(series: dict[str, SensorSeries]) -> dict[str, DeviceSeries]:
    """Each device's :class:`DeviceSeries` from its sensors' series (tags in sorted order)."""
    by: dict[str, dict[str, SensorSeries]] = {}
    for name, ser in series.items():
        device, _, tag = name.partition("/")
        by.setdefault(device, {})[tag] = ser
    out = {}
    for device, tags in sorted(by.items()):
        names = sorted(tags)
        ends = np.unique(np.concatenate([tags[t].window_end for t in names]))
        feats = np.full((ends.size, len(names), len(FEATURES)), np.nan)
        for c, t in enumerate(names):
            feats[np.searchsorted(ends, tags[t].window_end), c] = tags[t].features()
        out[device] = DeviceSeries(device, names, ends, feats)
    return out


def device_sequences(
    ds: DeviceSeries, seq_len: int, slide: int = 1, window_ms: int = 5000
) -> tuple[np.ndarray, np.ndarray]:
    """All count windows of a device: (X [N, S, C, F] float32 with NaN where missing, ends [N])."""
    C, F = len(ds.tags), len(FEATURES)
    if len(ds) < seq_len:
        return np.empty((0, seq_len, C, F), np.float32), np.empty(0, np.int64)
    X = np.lib.stride_tricks.sliding_window_view(ds.feats, seq_len, axis=0).transpose(0, 3, 1, 2)
    ends = ds.window_end[seq_len - 1 :]
    keep = keep_window(ends, slide, window_ms)
    return np.ascontiguousarray(X[keep], dtype=np.float32), ends[keep]


def device_model_name(device: str, layout: str = "per-sensor", groups: int = 8) -> str:
    """The TF Serving model of a device model: the device's name (per-sensor layout: one model
    per device), or ``packed-dev-NNN`` (packed: devices hash into their own groups, apart from
    the sensor models')."""
    if layout == "packed":
        return f"packed-dev-{zlib.crc32(device.encode()) % groups:03d}"
    if layout != "per-sensor":
        raise ValueError(f"unknown layout {layout!r}")
    return device


def matches(name: str, selector: str | None) -> bool:
    """Shell-style ``selector`` (comma-separated patterns) matches ``name``; None or '' matches nothing.

    >>> matches("pump-03", "pump-*,press-1"), matches("dev-0001", "pump-*"), matches("x", "")
    (True, False, False)
    """
    import fnmatch

    return bool(selector) and any(fnmatch.fnmatchcase(name, p.strip()) for p in selector.split(",") if p.strip())
