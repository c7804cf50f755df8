"""Training data: each sensor's tumbling aggregates over a time range.

Sources:

* the aggregates topic in Kafka, which the streaming job fills (``from_kafka``): the reader
  seeks each partition to ``ts_from`` by record timestamp (the job stamps aggregates with
  their window end) and stops at ``ts_to`` or at the end offsets seen when it started;
* files (``from_files``): CSV or Parquet holding either aggregates (``sensor, window_end,
  mean, stddev, count``) or raw readings (``sensor`` or ``device`` + ``tag``, ``ts``,
  ``value``), or SKAB's ``;``-separated wide format (one column per tag, device = file name).
  Raw readings are put through :func:`aggregate_readings`, the same tumbling rule as the job.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np

from sensorwatch.core.contracts import sensor_id
from sensorwatch.core.windows import SensorSeries, aggregate_readings


def select(sensors, pattern: str | None) -> list[str]:
    """Sensors matching a shell-style selector (``dev-00*/temperature``); all for None or '*'."""
    names = sorted(sensors)
    if not pattern or pattern == "*":
        return names
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    return [s for s in names if any(fnmatch.fnmatchcase(s, p) for p in pats)]


def from_kafka(
    kafka_cfg,
    topic: str,
    ts_from: int | None = None,
    ts_to: int | None = None,
    pattern: str | None = None,
    idle_timeout_s: float = 5.0,
) -> dict[str, SensorSeries]:
    """Read aggregate records (see ``contracts.aggregate_record``) for [ts_from, ts_to)."""
    from kafka import TopicPartition

    from sensorwatch.core.kafka import consumer

    c = consumer(kafka_cfg, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        if not parts:
            raise ValueError(f"topic {topic!r} does not exist or has no partitions")
        c.assign(parts)
        end = c.end_offsets(parts)
        start = c.offsets_for_times({tp: ts_from for tp in parts}) if ts_from is not None else {}
        for tp in parts:
            off = start.get(tp)
            c.seek(tp, off.offset if off is not None else (end[tp] if ts_from is not None else 0))
        done = {tp for tp in parts if c.position(tp) >= end[tp]}
        rows: dict[tuple[str, int], tuple[float, float, float]] = {}
        while len(done) < len(parts):
            batch = c.poll(timeout_ms=int(idle_timeout_s * 1000), max_records=50_000)
            if not batch:
                break
            for tp, msgs in batch.items():
                for m in msgs:
                    if m.offset >= end[tp] or (ts_to is not None and m.timestamp >= ts_to):
                        done.add(tp)
                        continue
                    r = json.loads(m.value)
                    # at-least-once delivery may repeat an aggregate: the key (sensor, window_end) dedups
                    rows[(r["sensor"], int(r["window_end"]))] = (r["mean"], r.get("stddev", 0.0), r["count"])
                if c.position(tp) >= end[tp]:
                    done.add(tp)
    finally:
        c.close()
    return _series_from_rows(rows, ts_from, ts_to, pattern)


def _series_from_rows(rows, ts_from, ts_to, pattern) -> dict[str, SensorSeries]:
    by: dict[str, list] = {}
    for (s, end), v in rows.items():
        by.setdefault(s, []).append((end, *v))
    out = {}
    for s in select(by, pattern):
        a = np.array(sorted(by[s]), dtype=np.float64)
        out[s] = SensorSeries(s, a[:, 0].astype(np.int64), a[:, 1], a[:, 2], a[:, 3]).between(ts_from, ts_to)
    return out


def read_table(path: Path):
    import pandas as pd

    path = Path(path)
    if path.suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    head = path.open().readline()
    return pd.read_csv(path, sep=";" if head.count(";") > head.count(",") else ",")


def from_files(
    paths: list[Path], window_ms: int, ts_from: int | None = None, ts_to: int | None = None, pattern: str | None = None
) -> dict[str, SensorSeries]:
    """Aggregates from CSV/Parquet files in any of the three layouts in the module docstring."""
    import pandas as pd

    rows: dict[tuple[str, int], tuple[float, float, float]] = {}
    raw = []
    for p in paths:
        df = read_table(p)
        cols = set(df.columns)
        if {"sensor", "window_end", "mean", "count"} <= cols:
            sd = df["stddev"] if "stddev" in cols else pd.Series(0.0, index=df.index)
            for s, e, m, d, n in zip(df["sensor"], df["window_end"], df["mean"], sd, df["count"]):
                rows[(str(s), int(e))] = (float(m), float(d), float(n))
        elif {"ts", "value"} <= cols and ({"sensor"} <= cols or {"device", "tag"} <= cols):
            sensors = (
                df["sensor"].astype(str)
                if "sensor" in cols
                else [sensor_id(d, t) for d, t in zip(df["device"], df["tag"])]
            )
            raw.append((np.asarray(sensors), df["ts"].to_numpy(np.int64), df["value"].to_numpy(np.float64)))
        elif "datetime" in cols:  # SKAB: wide, one column per tag
            ts = pd.to_datetime(df["datetime"]).astype("int64").to_numpy() // 1_000_000
            device = Path(p).stem.replace(" ", "_")
            for tag in [c for c in df.columns if c not in ("datetime", "anomaly", "changepoint")]:
                raw.append(
                    (
                        np.full(len(df), sensor_id(f"skab-{device}", tag.replace(" ", "_"))),
                        ts,
                        df[tag].to_numpy(np.float64),
                    )
                )
        else:
            raise ValueError(f"{p}: columns {sorted(cols)} are neither aggregates, readings nor SKAB")
    if raw:
        agg = aggregate_readings(
            np.concatenate([r[0] for r in raw]),
            np.concatenate([r[1] for r in raw]),
            np.concatenate([r[2] for r in raw]),
            window_ms,
        )
        for s, ser in agg.items():
            for e, m, d, n in zip(ser.window_end, ser.mean, ser.stddev, ser.count):
                rows[(s, int(e))] = (m, d, n)
    return _series_from_rows(rows, ts_from, ts_to, pattern)
