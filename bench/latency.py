"""Flink's network buffer timeout: latency at a paced load and sustained rate on a backlog, at
the job's default (``job.buffer_timeout_ms``, 10 ms) against Flink's own default (100 ms), side
by side in one run.

Why: with a light stream, a record waits in a partly filled network buffer until the timeout
flushes it, at each exchange between tasks; a window's result crosses three after its tumbling
window fires (to the count windows, to the shard's batch, to the incident stage). At 20k
readings/s that wait was most of the 0.38-0.46 s p99. Under a backlog buffers fill and go at
once, so a short timeout should cost throughput little; this bench measures both.

1. The fleet of ``bench/pipeline.py`` (1,002 sensors, packed models trained on an hour of clean
   history, the model server in its own process, the local broker).
2. ``kafka_consume_per_s``: one consumer reads a preloaded backlog of ``--minutes``.
3. The default job on that backlog at each timeout, in turn, ``--rounds`` times (alternating,
   so that the JIT's warm-up and the machine's other load fall on both alike): readings/s
   between 30 % and 95 % of the backlog, and each one's ratio to the raw consume.
4. The fleet paced at ``--paced-rate`` readings/s through the default job at each timeout, in
   turn: p50/p99 from a window's close to its anomaly record in Kafka (as ``bench/pipeline.py``
   measures it); then once more with every score published.

Ends with one JSON line. Usage: ``.venv/bin/python bench/latency.py [--minutes 30]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
from pathlib import Path

from sensorwatch.app import local
from sensorwatch.simulate import Fleet
from sensorwatch.stack import LocalStack

_spec = importlib.util.spec_from_file_location("bench_pipeline", Path(__file__).with_name("pipeline.py"))
bp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bp)

FLINK_DEFAULT_MS = 100


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=334, help="x 3 tags = sensors")
    ap.add_argument("--minutes", type=float, default=30.0, help="event time preloaded for the throughput runs")
    ap.add_argument("--rounds", type=int, default=2, help="throughput and latency runs per timeout")
    ap.add_argument("--paced-rate", type=float, default=20_000.0, help="readings/s of the latency runs")
    ap.add_argument("--paced-s", type=float, default=40.0, help="wall seconds of each latency run")
    ap.add_argument("--work", default=".sensorwatch/bench-latency")
    args = ap.parse_args()

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    s = bp.fleet_settings(work, args.devices)
    ours = s.job.buffer_timeout_ms
    timeouts = (ours, FLINK_DEFAULT_MS)
    s.simulator.duration_s = args.minutes * 60
    stack = LocalStack(s)
    s.kafka.bootstrap_servers = stack.up()["bootstrap_servers"]
    server = None
    try:
        fleet = Fleet(s.simulator)
        n_sensors = len(fleet.sensors)
        local.train_on_history(s, fleet.start_ms, hours=1.0)
        server = local.ModelServerProcess(s, work / "server.log").start()

        a = bp.bench_topics(s)
        stats = bp.simulate(a.simulator, a.kafka, fleet=fleet)
        local.flush_watermark(a, fleet.end_ms + 120_000)
        raw = bp.raw_consume_rate(a, stats.readings)
        print(f"preloaded {stats.readings:,} readings; raw consume {raw:,.0f}/s", flush=True)
        windows = n_sensors * (int(args.minutes * 60 / s.job.window_s) - s.job.seq_len + 1)
        per_window = stats.readings / (windows + n_sensors * (s.job.seq_len - 1))

        rates: dict[int, list[float]] = {t: [] for t in timeouts}
        for _ in range(args.rounds):
            for t in timeouts:
                a.job.buffer_timeout_ms = t
                # dropout anomalies leave some windows out: the run ends 30 s after its last news
                progress = bp.default_config_rate(a, int(windows * 0.98))
                rate = bp.steady_rate(progress) * per_window
                rates[t].append(rate)
                print(f"buffer timeout {t} ms: {progress[-1][1]:,} windows, {rate:,.0f} readings/s", flush=True)

        paced: dict[str, dict[int, list[dict]]] = {"anomalies": {t: [] for t in timeouts}, "all_scores": {}}
        for _ in range(args.rounds):
            for t in timeouts:
                s.job.buffer_timeout_ms = t
                r = bp.paced_latency(s, args, n_sensors, emit_scores=False)
                paced["anomalies"][t].append(r)
                print(f"paced, buffer timeout {t} ms: {r}", flush=True)
        s.job.buffer_timeout_ms = ours
        paced["all_scores"][ours] = [bp.paced_latency(s, args, n_sensors, emit_scores=True)]
        print(f"paced, every score published, buffer timeout {ours} ms: {paced['all_scores'][ours][0]}", flush=True)
    finally:
        if server is not None:
            server.stop()
        stack.down()

    def worst(runs: list[dict], key: str) -> float:
        return max(r[key] for r in runs)

    mean = {t: statistics.mean(v) for t, v in rates.items()}
    figures = {
        "sensors": n_sensors,
        "kafka_consume_per_s": round(raw),
        "buffer_timeout_ms": ours,
        "readings_per_s": round(mean[ours]),
        "ratio": round(mean[ours] / raw, 3),
        "flink_default_readings_per_s": round(mean[FLINK_DEFAULT_MS]),
        "flink_default_ratio": round(mean[FLINK_DEFAULT_MS] / raw, 3),
        "throughput_ratio": round(mean[ours] / mean[FLINK_DEFAULT_MS], 3),
        "readings_per_s_runs": {t: [round(x) for x in v] for t, v in rates.items()},
        "p50_latency_s": worst(paced["anomalies"][ours], "p50_s"),
        "p99_latency_s": worst(paced["anomalies"][ours], "p99_s"),
        "flink_default_p50_latency_s": worst(paced["anomalies"][FLINK_DEFAULT_MS], "p50_s"),
        "flink_default_p99_latency_s": worst(paced["anomalies"][FLINK_DEFAULT_MS], "p99_s"),
        "p99_latency_runs_s": {t: [r["p99_s"] for r in v] for t, v in paced["anomalies"].items()},
        "all_scores_p50_latency_s": paced["all_scores"][ours][0]["p50_s"],
        "all_scores_p99_latency_s": paced["all_scores"][ours][0]["p99_s"],
        "paced_readings_per_s": paced["anomalies"][ours][0]["readings_per_s"],
    }
    print(
        f"p99 at {args.paced_rate:,.0f} readings/s: {figures['p99_latency_s']} s against {figures['flink_default_p99_latency_s']} s"
    )
    print(f"throughput: {figures['throughput_ratio']}x Flink's default timeout's, ratio to raw {figures['ratio']}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
