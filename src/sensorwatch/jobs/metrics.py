"""The running job's metrics, read from Flink's REST API (a cluster's, or the mini-cluster's when
the job runs with ``rest.port`` set): what the scorer counts (``sensorwatch.windows_scored``,
``outages``, ``outage_ms``, ...) summed over subtasks."""

from __future__ import annotations

import json
import time
import urllib.request


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def job_metrics(
    rest_port: int, job_id: str, suffixes: tuple[str, ...], host: str = "127.0.0.1", wait_s: float = 0.0
) -> dict[str, float]:
    """Sum over subtasks and operators of the job's metrics whose names end with ``suffixes``.

    Flink's REST API answers from a metric store it refreshes in the background, at most every
    ``metrics.fetcher.update-interval`` (10 s): the first request after a while can see none of
    a job's metrics, or not yet one that appeared since. ``wait_s`` asks again, once a second,
    until every suffix is there or that many seconds have passed.
    """
    deadline = time.monotonic() + wait_s
    while True:
        out = _job_metrics_once(rest_port, job_id, suffixes, host)
        if len(out) == len(suffixes) or time.monotonic() >= deadline:
            return out
        time.sleep(1)


def _job_metrics_once(rest_port: int, job_id: str, suffixes: tuple[str, ...], host: str) -> dict[str, float]:
    base = f"http://{host}:{rest_port}/jobs/{job_id}"
    out: dict[str, float] = {}
    for v in _get(base)["vertices"]:
        names = [m["id"] for m in _get(f"{base}/vertices/{v['id']}/metrics")]
        wanted = [n for n in names if n.endswith(suffixes)]
        if wanted:
            for m in _get(f"{base}/vertices/{v['id']}/metrics?get=" + ",".join(wanted)):
                key = next(sfx for sfx in suffixes if m["id"].endswith(sfx))
                out[key] = out.get(key, 0.0) + float(m["value"])
    return out


def task_metrics(
    rest_port: int,
    job_id: str,
    names: tuple[str, ...] = ("numRecordsIn", "numRecordsOut", "currentInputWatermark"),
    host: str = "127.0.0.1",
) -> dict[str, dict[str, str]]:
    """Task name -> its first subtask's task-level metrics ``names``: where records stop, or a
    watermark stalls, in a job that does not progress."""
    base = f"http://{host}:{rest_port}/jobs/{job_id}"
    out: dict[str, dict[str, str]] = {}
    for v in _get(base)["vertices"]:
        got = _get(f"{base}/vertices/{v['id']}/metrics?get=" + ",".join(f"0.{n}" for n in names))
        out[v["name"]] = {m["id"][2:]: m["value"] for m in got}
    return out


def subtask_records_in(
    rest_port: int, job_id: str, vertex: str, host: str = "127.0.0.1", wait_s: float = 0.0
) -> list[int]:
    """Records each parallel subtask of the task whose name holds ``vertex`` has read: how a
    keyed operator's work is spread over the slots. ``wait_s``: as in :func:`job_metrics`, ask
    again while a subtask shows none (the REST metric store refreshes in the background)."""
    base = f"http://{host}:{rest_port}/jobs/{job_id}"
    deadline = time.monotonic() + wait_s
    while True:
        found = [v for v in _get(base)["vertices"] if vertex in v["name"]]
        if not found:
            raise KeyError(f"no task of job {job_id} is named like {vertex!r}")
        subtasks = sorted(_get(f"{base}/vertices/{found[0]['id']}")["subtasks"], key=lambda st: st["subtask"])
        counts = [int(st["metrics"]["read-records"]) for st in subtasks]
        if all(counts) or time.monotonic() >= deadline:
            return counts
        time.sleep(1)


#: Flink's task-level time split, each in ms per second of wall time: working, waiting for
#: input, and blocked by a slower task downstream (back-pressure).
TIME_METRICS = ("busyTimeMsPerSecond", "idleTimeMsPerSecond", "backPressuredTimeMsPerSecond")


def task_times(
    rest_port: int, job_id: str, host: str = "127.0.0.1", wait_s: float = 0.0
) -> dict[str, dict[str, float]]:
    """Task name -> the mean over its subtasks of :data:`TIME_METRICS`: where a job spends its
    time, stage by stage (a chain of operators is one task). The stage that is busy while
    those before it are back-pressured is the one that bounds the job. ``wait_s``: as in
    :func:`job_metrics`, ask again while a task has none yet."""
    base = f"http://{host}:{rest_port}/jobs/{job_id}"
    deadline = time.monotonic() + wait_s
    while True:
        out: dict[str, dict[str, float]] = {}
        for v in _get(base)["vertices"]:
            got = _get(f"{base}/vertices/{v['id']}/subtasks/metrics?get={','.join(TIME_METRICS)}&agg=avg")
            out[v["name"]] = {m["id"]: float(m["avg"]) for m in got}
        if all(len(t) == len(TIME_METRICS) for t in out.values()) or time.monotonic() >= deadline:
            return out
        time.sleep(1)
