"""Decoding the byte batches ``pack_windows`` (``jvm/flink/.../PackWindows.java``) builds.

One batch holds every count window of one shard that closed at one event time. Decoding is a
handful of ``numpy.frombuffer`` views: no per-window Python work before the Predict call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensorwatch.core.windows import FEATURES


@dataclass
class WindowBatch:
    """Count windows of several sensors, row i belonging to ``sensors[i]``."""

    sensors: list[str]
    start: np.ndarray  # int64 ms: start of the first tumbling window
    end: np.ndarray  # int64 ms: end of the last tumbling window (the window's event time)
    closed: np.ndarray  # int64 ms: wall clock when the last tumbling window fired
    features: np.ndarray  # float64 [n, S, F] in the order of FEATURES

    def __len__(self) -> int:
        return len(self.sensors)

    def take(self, idx: np.ndarray | list[int]) -> WindowBatch:
        idx = np.asarray(idx, dtype=np.int64)
        return WindowBatch(
            [self.sensors[i] for i in idx], self.start[idx], self.end[idx], self.closed[idx], self.features[idx]
        )


#: First int32 of a device batch (``PackDeviceWindows.MAGIC``); a sensor batch starts with its size.
DEVICE_MAGIC = -2


@dataclass
class DeviceBatch:
    """Count windows of S device vectors, row i belonging to ``devices[i]``.

    ``tags[i]`` are window i's columns (the union of the tags in its S steps, sorted; ``""``
    pads a window narrower than the batch); ``features[i, s, c]`` holds tag c's :data:`FEATURES`
    at step s, NaN where the tag had no reading in that step.
    """

    devices: list[str]
    start: np.ndarray
    end: np.ndarray
    closed: np.ndarray
    tags: np.ndarray  # object [n, C]
    features: np.ndarray  # float64 [n, S, C, F]

    def __len__(self) -> int:
        return len(self.devices)

    @property
    def sensors(self) -> list[str]:
        """The key each window's records carry: the device (a device model scores the device)."""
        return self.devices


def decode(buf: bytes) -> WindowBatch | DeviceBatch:
    """The batch in ``buf``; raises ValueError when the layout does not add up."""
    if len(buf) < 8:
        raise ValueError(f"window batch of {len(buf)} bytes has no header")
    n, s = (int(x) for x in np.frombuffer(buf, dtype="<i4", count=2))
    if n == DEVICE_MAGIC:
        return decode_devices(buf)
    f = len(FEATURES)
    fixed = 8 + 24 * n + 8 * f * n * s
    if n < 0 or s < 0 or len(buf) < fixed:
        raise ValueError(f"window batch header n={n} S={s} does not fit {len(buf)} bytes")
    times = np.frombuffer(buf, dtype="<i8", count=3 * n, offset=8).reshape(3, n)
    feats = np.frombuffer(buf, dtype="<f8", count=f * n * s, offset=8 + 24 * n).reshape(f, n, s)
    names = bytes(buf[fixed:]).decode("utf-8").split("\n") if n else []
    if len(names) != n:
        raise ValueError(f"window batch names {len(names)} sensors for {n} windows")
    return WindowBatch(
        names, times[0].copy(), times[1].copy(), times[2].copy(), np.ascontiguousarray(feats.transpose(1, 2, 0))
    )


def encode(batch: WindowBatch) -> bytes:
    """The inverse of :func:`decode` (tests and the bench; the job's batches come from Java)."""
    n = len(batch)
    s = batch.features.shape[1] if n else 0
    head = np.array([n, s], dtype="<i4").tobytes()
    times = np.stack([batch.start, batch.end, batch.closed]).astype("<i8").tobytes()
    feats = np.asarray(batch.features, dtype="<f8").transpose(2, 0, 1).tobytes()
    return head + times + feats + "\n".join(batch.sensors).encode("utf-8")


def decode_devices(buf: bytes) -> DeviceBatch:
    """A device batch (``PackDeviceWindows``); raises ValueError when the layout does not add up."""
    if len(buf) < 16:
        raise ValueError(f"device batch of {len(buf)} bytes has no header")
    magic, n, s, c = (int(x) for x in np.frombuffer(buf, dtype="<i4", count=4))
    f = len(FEATURES)
    fixed = 16 + 24 * n + 8 * f * n * s * c
    if magic != DEVICE_MAGIC or min(n, s, c) < 0 or len(buf) < fixed:
        raise ValueError(f"device batch header n={n} S={s} C={c} does not fit {len(buf)} bytes")
    times = np.frombuffer(buf, dtype="<i8", count=3 * n, offset=16).reshape(3, n)
    feats = np.frombuffer(buf, dtype="<f8", count=f * n * s * c, offset=16 + 24 * n).reshape(f, n, s, c)
    names = bytes(buf[fixed:]).decode("utf-8").split("\n") if n else []
    if len(names) != n + n * c:
        raise ValueError(f"device batch names {len(names)} devices and tags for {n} windows of {c} tags")
    tags = np.empty((n, c), dtype=object)
    tags[:] = np.asarray(names[n:], dtype=object).reshape(n, c) if c else tags
    return DeviceBatch(
        names[:n],
        times[0].copy(),
        times[1].copy(),
        times[2].copy(),
        tags,
        np.ascontiguousarray(feats.transpose(1, 2, 3, 0)),
    )


def encode_devices(batch: DeviceBatch) -> bytes:
    """The inverse of :func:`decode_devices` (tests; the job's device batches come from Java)."""
    n = len(batch)
    s, c = (batch.features.shape[1], batch.features.shape[2]) if n else (0, 0)
    head = np.array([DEVICE_MAGIC, n, s, c], dtype="<i4").tobytes()
    times = np.stack([batch.start, batch.end, batch.closed]).astype("<i8").tobytes()
    feats = np.asarray(batch.features, dtype="<f8").transpose(3, 0, 1, 2).tobytes()
    names = list(batch.devices) + [str(t) for t in np.asarray(batch.tags).reshape(-1)]
    return head + times + feats + "\n".join(names).encode("utf-8")


#: Layout of a compact score batch (``encode_scores``; ``jvm/flink/.../ScoreRows.java`` reads it).
SCORE_INTS = ("row",)
SCORE_LONGS = ("end", "closed", "version")
SCORE_DOUBLES = ("score", "threshold", "seed_n", "seed_mean", "seed_var")
SCORE_BYTES = ("step", "feature", "hint", "anomaly", "prior")
SCORE_COLUMNS = SCORE_INTS + SCORE_LONGS + SCORE_DOUBLES + SCORE_BYTES
#: Bytes per window of the fixed columns.
SCORE_ROW_BYTES = 4 * len(SCORE_INTS) + 8 * len(SCORE_LONGS) + 8 * len(SCORE_DOUBLES) + len(SCORE_BYTES)


@dataclass
class ScoreBatch:
    """The scored windows of one batch, column by column: what the incident stage and the JVM's
    record builder (``explode_records``) read.

    One bytes row per batch crosses from Python to the JVM, where ``unpack_scores`` makes the
    per-window rows of the incident stage and ``explode_records`` the anomaly and score records
    of sensor models; a Python row or a JSON dump per window would cost more than the scoring.
    ``cols["row"]`` is each window's row in the batch the scorer read (its features are there).
    """

    sensors: list[str]
    models: list[str]
    cols: dict[str, np.ndarray]
    drivers: list[str] | None = None
    """device models: the tags that drove each window's score, ``tag:share`` joined by ``,``"""
    per_step_error: np.ndarray | None = None
    """float64 [n, E]: each window's per-step error; a row starting with NaN has none"""

    def __len__(self) -> int:
        return len(self.sensors)


def encode_scores(b: ScoreBatch) -> bytes:
    n = len(b)
    pse = np.zeros((n, 0)) if b.per_step_error is None else np.asarray(b.per_step_error, "<f8").reshape(n, -1)
    parts = [np.array([n, pse.shape[1]], "<i4").tobytes()]
    parts += [np.asarray(b.cols[c], "<i4").tobytes() for c in SCORE_INTS]
    parts += [np.asarray(b.cols[c], "<i8").tobytes() for c in SCORE_LONGS]
    parts += [np.asarray(b.cols[c], "<f8").tobytes() for c in SCORE_DOUBLES]
    parts += [np.asarray(b.cols[c], "i1").tobytes() for c in SCORE_BYTES]
    parts.append(np.ascontiguousarray(pse, "<f8").tobytes())
    drivers = b.drivers or [""] * n
    names = "\n".join(f"{s}\t{m}\t{d}" for s, m, d in zip(b.sensors, b.models, drivers))
    return b"".join(parts) + names.encode("utf-8")


def decode_scores(buf: bytes) -> ScoreBatch:
    """The inverse of :func:`encode_scores` (tests; the job decodes in the JVM)."""
    if len(buf) < 8:
        raise ValueError(f"score batch of {len(buf)} bytes has no header")
    n, e = (int(x) for x in np.frombuffer(buf, "<i4", count=2))
    if n < 0 or e < 0 or len(buf) < 8 + n * SCORE_ROW_BYTES + 8 * n * e:
        raise ValueError(f"score batch of {len(buf)} bytes cannot hold {n} windows of {e} errors")
    off, cols = 8, {}
    for names, dtype, size in (
        (SCORE_INTS, "<i4", 4),
        (SCORE_LONGS, "<i8", 8),
        (SCORE_DOUBLES, "<f8", 8),
        (SCORE_BYTES, "i1", 1),
    ):
        for c in names:
            cols[c] = np.frombuffer(buf, dtype, count=n, offset=off).copy()
            off += size * n
    pse = np.frombuffer(buf, "<f8", count=n * e, offset=off).reshape(n, e).copy()
    off += 8 * n * e
    lines = bytes(buf[off:]).decode("utf-8").split("\n") if n else []
    if len(lines) != n:
        raise ValueError(f"score batch names {len(lines)} windows for {n}")
    parts = [line.split("\t", 2) for line in lines]
    if any(len(p) != 3 for p in parts):
        raise ValueError("score batch names a window without sensor, model and drivers")
    return ScoreBatch([p[0] for p in parts], [p[1] for p in parts], cols, [p[2] for p in parts], pse if e else None)
