"""The whole pipeline on 1,000 sensors: sustained readings/s, and latency from window close to
the record in Kafka, against the raw Kafka consume rate of the same topic, in one run.

1. Train packed models for the fleet on clean history; start the model server and a broker.
2. Preload the readings topic with ``--minutes`` of event time (1 reading/s/sensor).
3. ``kafka_consume_per_s``: one librdkafka consumer reads that whole topic, doing nothing else.
4. ``all_scores_readings_per_s``: the job (Flink mini-cluster, every score published) starts
   on the backlog. Every count window it scores lands in the scores or anomalies topic; the
   rate of those records between 30 % and 95 % of the total (past the JIT warm-up), times the
   mean readings per window, is the sustained end-to-end rate. All windows must arrive.
   ``readings_per_s``: the same backlog through the job with its default configuration
   (anomaly and incident records), its progress read from the ``windows_scored`` metric
   (Flink REST); ``no_incident_stage_readings_per_s`` the same without the incident stage
   (``job.incidents.enabled`` off), and ``incident_stage_ratio`` the first over the second.
   ``batch_per_model_readings_per_s``: the default job with one scoring batch per packed model
   (``job.batch_shards`` = ``serving.packed_groups``, the batching before that setting), and
   ``batch_shards_ratio`` the default's mean over it. Every rate read from Flink's REST metrics
   is read with its metric store refreshed once a second (:data:`METRICS_EVERY_SECOND`).
   During the default run's steady part, ``default_stage_ms_per_s``: each task's busy, idle
   and back-pressured ms per second (Flink REST, mean of samples every 5 s), and a JFR
   recording of the mini-cluster's JVM (``jcmd JFR.start settings=profile``), summarised as
   ``default_jfr_threads`` (execution samples by thread: Flink names a task's thread after the
   task) and ``default_jfr_self`` (by the method on top of the stack).
   ``device_format_readings_per_s``: the same fleet preloaded as device messages
   (``kafka.readings_format: device``, one message per device and second, 3 tags each) through
   the default job, and ``device_format_ratio`` that over ``readings_per_s``.
   ``parallelism_N_ratio`` (``--parallelism N``, default 2): the default job through
   ``flink run -py`` on a standalone cluster from the wheel's scripts, one TaskManager of N
   slots, at parallelism 1 and then N on the same backlog (4 partitions); the per-slot rate
   and the ratio of N to 1.
5. ``p50/p99_latency_s``: the job with its default configuration (anomaly records only) on
   fresh topics while the fleet is paced at ``--paced-rate`` readings/s; for every anomaly
   record, its Kafka timestamp minus the wall time its last tumbling window fired
   (``window_closed_ts``): what the job adds once the watermark has closed a window. The
   ``all_scores_*`` figures repeat that with every score published (every window a record).

The measuring consumers count bytes and parse only after the clock stops, so they take little
of the two cores the job needs. Ends with one JSON line of the figures.
Usage: ``.venv/bin/python bench/pipeline.py [--minutes 60]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensorwatch.app import local
from sensorwatch.core.config import Settings
from sensorwatch.core.kafka import librdkafka_options
from sensorwatch.jobs.metrics import TIME_METRICS, job_metrics, task_times
from sensorwatch.jobs.pipeline import run
from sensorwatch.simulate import Fleet, simulate
from sensorwatch.stack import LocalStack
from sensorwatch.stack.kafka_broker import free_port

#: Flink's REST metric store refreshes every 10 s by default. The rates below are read from it,
#: and at that grain a run's 30-95 % span was one or two refreshes: the same job read 64-88 % of
#: its rate at a 1 s refresh (docs/BENCHMARKS.md).
METRICS_EVERY_SECOND = {"metrics.fetcher.update-interval": "1000"}


def _consumer(s: Settings, topics: list[str]):
    from confluent_kafka import Consumer

    c = Consumer(
        {
            **librdkafka_options(s.kafka, "consumer"),
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.subscribe(topics)
    return c


def raw_consume_rate(s: Settings, expected: int) -> float:
    """Records/s of one consumer reading the readings topic from the start."""
    c = _consumer(s, [s.kafka.topics.readings])
    n, t0 = 0, None
    deadline = time.monotonic() + 600
    while n < expected and time.monotonic() < deadline:
        msgs = c.consume(10_000, timeout=1.0)
        if msgs and t0 is None:
            t0 = time.monotonic()
        n += sum(1 for m in msgs if m.error() is None)
    rate = n / (time.monotonic() - t0)
    c.close()
    return rate


def collect(s: Settings, topics: list[str], quiet_s: float, max_s: float, keep: bool = False):
    """(arrival times with running counts, raw values) of ``topics`` until ``quiet_s`` without news."""
    c = _consumer(s, topics)
    progress: list[tuple[float, int]] = []
    kept: list[tuple[bytes, int]] = []
    n, last, t_end = 0, time.monotonic(), time.monotonic() + max_s
    try:
        while time.monotonic() < t_end and (n == 0 or time.monotonic() - last < quiet_s):
            msgs = [m for m in c.consume(10_000, timeout=0.5) if m.error() is None]
            if msgs:
                n += len(msgs)
                last = time.monotonic()
                progress.append((last, n))
                if keep:
                    kept.extend((m.value(), m.timestamp()[1]) for m in msgs)
    finally:
        c.close()
    return progress, kept


def steady_rate(progress: list[tuple[float, int]], lo: float = 0.3, hi: float = 0.95) -> float:
    """Records/s between ``lo`` and ``hi`` of the final count."""
    total = progress[-1][1]
    t_lo = next(t for t, n in progress if n >= lo * total)
    n_lo = next(n for t, n in progress if n >= lo * total)
    t_hi = next(t for t, n in progress if n >= hi * total)
    n_hi = next(n for t, n in progress if n >= hi * total)
    return (n_hi - n_lo) / (t_hi - t_lo)


def fleet_settings(work: Path, devices: int) -> Settings:
    """The bench fleet's settings: its broker and packed models under ``work`` (free ports),
    ``devices`` x 3 tags, models trained briefly (5 epochs; the rates do not depend on them)."""
    s = Settings()
    s.stack.work_dir, s.stack.kafka_port, s.stack.controller_port = work / "stack", 0, 0
    port = free_port()
    s.serving.port, s.serving.target, s.serving.model_base_path = port, f"127.0.0.1:{port}", work / "models"
    s.serving.layout, s.serving.poll_wait_s = "packed", 0.5
    s.simulator.devices, s.simulator.anomaly_rate_per_hour = devices, 2.0
    s.training.epochs, s.training.plots = 5, False
    return s


def bench_topics(s: Settings) -> Settings:
    """Fresh topics, read from the start, every score published (so every window is counted)."""
    s = local.fresh_topics(s, "bench")
    s.job.start_from = "earliest"
    s.job.emit_scores = True
    return s


def paced_latency(s: Settings, args, n_sensors: int, emit_scores: bool) -> dict:
    """The fleet paced at ``--paced-rate`` readings/s on fresh topics; for each record in the
    anomalies topic (and the scores topic, with ``emit_scores``): its Kafka timestamp minus the
    wall time its last tumbling window fired."""
    b = bench_topics(s)
    b.job.emit_scores = emit_scores
    b.simulator.realtime, b.simulator.speed = True, args.paced_rate / n_sensors
    b.simulator.duration_s = args.paced_s * b.simulator.speed
    b.simulator.start_ms = None
    b.simulator.out_of_order_rate = 0.0
    b.job.out_of_orderness_ms = 500
    fleet = Fleet(b.simulator)
    job = run(b, detached=True)
    time.sleep(10)
    stats = simulate(b.simulator, b.kafka, fleet=fleet)
    topics = [b.kafka.topics.anomalies] + ([b.kafka.topics.scores] if emit_scores else [])
    _, kept = collect(b, topics, quiet_s=8, max_s=60, keep=True)
    job.cancel().result()
    lat = np.array([ts - json.loads(v)["window_closed_ts"] for v, ts in kept]) / 1000.0
    return {
        "readings_per_s": round(stats.readings_per_s),
        "records": int(lat.size),
        "p50_s": round(float(np.percentile(lat, 50)), 3),
        "p99_s": round(float(np.percentile(lat, 99)), 3),
        "max_s": round(float(lat.max()), 3),
    }


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _descendants(pid: int) -> list[int]:
    """Every process under ``pid``, read from /proc while they run: a thread or process that
    ends between the listing and the read has no children left to report, so it is passed over."""
    out = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return out
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            out += [int(child), *_descendants(int(child))]
    return out


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def job_memory(rest: int) -> dict:
    """The running mini-cluster's memory: its JVM's heap in use (Flink REST, the TaskManager's
    ``Status.JVM.Memory.Heap.Used``) and resident size, and the resident size of its Python
    workers (the ``beam_boot`` processes the JVM starts, with their children)."""
    jvms = _job_jvms()
    workers = [p for j in jvms for p in _descendants(j) if "python" in _cmdline(p).split(" ")[0]]
    tms = json.load(urllib.request.urlopen(f"http://127.0.0.1:{rest}/taskmanagers", timeout=10))["taskmanagers"]
    heap = 0.0
    for tm in tms:
        url = f"http://127.0.0.1:{rest}/taskmanagers/{tm['id']}/metrics?get=Status.JVM.Memory.Heap.Used"
        heap += sum(float(m["value"]) for m in json.load(urllib.request.urlopen(url, timeout=10)))
    return {
        "tm_heap_used_mib": round(heap / 2**20, 1),
        "jvm_rss_mib": round(sum(map(_rss_mib, jvms)), 1),
        "python_worker_rss_mib": round(sum(map(_rss_mib, workers)), 1),
        "python_worker_processes": len(workers),
    }


def _jdk_tool(name: str) -> str:
    """A JDK tool (``jcmd``, ``jfr``) of the Java that runs the job."""
    home = os.environ.get("JAVA_HOME")
    path = Path(home, "bin", name) if home else shutil.which(name)
    if not path or not Path(path).exists():
        raise FileNotFoundError(f"{name} not found (JAVA_HOME={home!r}); the JFR profile needs a JDK")
    return str(path)


def _job_jvms() -> list[int]:
    """This process's Flink JVMs (the mini-cluster's), not the broker's."""
    return [
        p for p in _descendants(os.getpid()) if "org.apache.flink" in _cmdline(p) and "kafka.Kafka" not in _cmdline(p)
    ]


def jfr(action: str, path: Path | None = None) -> None:
    """Start (``settings=profile``: a sample of every running Java thread every 10-20 ms) or
    stop and write a flight recording of the mini-cluster's JVM, through ``jcmd``."""
    import subprocess

    args = ["JFR.start", "name=sensorwatch", "settings=profile"]
    if action == "stop":
        args = ["JFR.stop", "name=sensorwatch", f"filename={path}"]
    for pid in _job_jvms():
        subprocess.run([_jdk_tool("jcmd"), str(pid), *args], check=True, capture_output=True, timeout=60)


def jfr_summary(path: Path, top: int = 12) -> dict:
    """Where the JVM's samples fall: by thread (Flink names a task's thread after the task, so
    this is CPU by stage) and by the method on top of the stack (self time), each as a share of
    all execution samples."""
    import subprocess

    text = subprocess.run(
        [_jdk_tool("jfr"), "print", "--stack-depth", "1", "--events", "jdk.ExecutionSample", str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    threads: dict[str, int] = {}
    methods: dict[str, int] = {}
    thread, n = "", 0
    lines = text.splitlines()
    for i, line in enumerate(lines):
        line = line.strip()
        if line.startswith("sampledThread = "):
            thread = line.split('"')[1]
        elif line == "stackTrace = [" and i + 1 < len(lines):
            frame = lines[i + 1].strip().split(" line:")[0]
            n += 1
            # a task's thread: "<task name> (k/n)#attempt"; the broker, the RPC and GC threads as named
            threads[thread] = threads.get(thread, 0) + 1
            methods[frame] = methods.get(frame, 0) + 1

    def shares(d: dict[str, int]) -> list[list]:
        return [[k[:160], round(v / max(n, 1), 3)] for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": n, "threads": shares(threads), "self": shares(methods)}


def default_config_rate(
    a: Settings,
    windows: int,
    max_s: float = 1200,
    incidents: bool = True,
    memory: dict | None = None,
    stages: dict | None = None,
    profile: Path | None = None,
) -> list[tuple[float, int]]:
    """The job with its default configuration (anomaly and incident records; without the
    incident stage when not ``incidents``) on the same preloaded readings, fresh output topics:
    progress of its ``windows_scored`` metric (Flink REST). ``stages``: filled with each task's
    busy, idle and back-pressured ms per second, averaged over samples taken every 5 s while
    the job is between 30 % and 95 % of the backlog (its steady part, as :func:`steady_rate`);
    ``profile``: a JFR recording of that part is written there."""
    c = local.fresh_topics(a, "bench")
    c.kafka.topics.readings = a.kafka.topics.readings
    c.job.start_from, c.job.emit_scores = "earliest", False
    c.job.incidents.enabled = incidents
    rest = free_port()
    conf = {"rest.port": str(rest), "rest.bind-port": str(rest), **METRICS_EVERY_SECOND}
    job = run(c, detached=True, extra_conf=conf)
    progress: list[tuple[float, int]] = []
    samples: list[dict[str, dict[str, float]]] = []
    t_end, last_change, last_sample = time.monotonic() + max_s, time.monotonic(), 0.0
    recording = False
    try:
        while time.monotonic() < t_end and time.monotonic() - last_change < 30:
            time.sleep(1.0)
            try:
                n = int(
                    job_metrics(rest, str(job.get_job_id()), ("sensorwatch.windows_scored",)).get(
                        "sensorwatch.windows_scored", 0
                    )
                )
            except OSError:
                continue  # the REST endpoint is not up yet
            if not progress or n != progress[-1][1]:
                progress.append((time.monotonic(), n))
                last_change = time.monotonic()
            if n >= windows:
                break
            steady = 0.3 * windows <= n <= 0.95 * windows
            if profile is not None and steady and not recording:
                jfr("start")
                recording = True
            if profile is not None and recording and n > 0.95 * windows:
                jfr("stop", profile)
                recording, profile = False, None
            if stages is not None and steady and time.monotonic() - last_sample >= 5:
                last_sample = time.monotonic()
                samples.append(task_times(rest, str(job.get_job_id())))
        if recording:  # the backlog ended between two polls
            jfr("stop", profile)
        if stages is not None:
            for task in samples[-1] if samples else {}:
                got = [smp[task] for smp in samples if len(smp.get(task, {})) == len(TIME_METRICS)]
                stages[task] = {m: round(float(np.mean([g[m] for g in got])), 1) for m in TIME_METRICS} | {
                    "samples": len(got)
                }
        if memory is not None:
            memory.update(job_memory(rest))  # after the whole backlog: every sensor's state is in
    finally:
        job.cancel().result()
    return progress


def standalone_rates(a: Settings, windows: int, work: Path, parallelism: int, max_s: float = 1200) -> dict[int, float]:
    """The default job, ``flink run -py jobs/anomaly_job.py`` on a standalone cluster from the
    wheel's scripts (one TaskManager of ``parallelism`` slots), on the same preloaded readings at
    parallelism 1 and then ``parallelism``: windows scored per second (``windows_scored``
    metric, Flink REST) between 30 % and 95 % of the backlog, per parallelism."""
    import yaml

    from sensorwatch.app.standalone import REPO, StandaloneCluster
    from sensorwatch.core.config import json_value

    assert a.kafka.partitions >= parallelism, "each slot's source needs a partition of its own"
    cluster = StandaloneCluster(work / "flink", slots=parallelism, conf=METRICS_EVERY_SECOND).start()
    rates: dict[int, float] = {}
    try:
        for p in sorted({1, parallelism}):
            c = local.fresh_topics(a, "bench")
            c.kafka.topics.readings = a.kafka.topics.readings
            c.job.start_from, c.job.emit_scores, c.job.parallelism = "earliest", False, p
            c.job.python_executable = sys.executable
            conf = work / f"job-p{p}.yaml"
            conf.write_text(yaml.safe_dump(json.loads(json.dumps(c.model_dump(mode="python"), default=json_value))))
            res = cluster.run_py(REPO / "jobs" / "anomaly_job.py", "--config", str(conf))
            found = [ln.rsplit(" ", 1)[1] for ln in res.stdout.splitlines() if "submitted with JobID" in ln]
            if res.returncode != 0 or not found:
                raise RuntimeError(f"flink run failed ({res.returncode}):\n{(res.stdout + res.stderr)[-3000:]}")
            job_id, progress = found[0], []
            t_end, last_change = time.monotonic() + max_s, time.monotonic()
            try:
                while time.monotonic() < t_end and time.monotonic() - last_change < 30:
                    time.sleep(1.0)
                    try:
                        got = job_metrics(cluster.rest_port, job_id, ("sensorwatch.windows_scored",))
                    except OSError:
                        continue
                    n = int(got.get("sensorwatch.windows_scored", 0))
                    if not progress or n != progress[-1][1]:
                        progress.append((time.monotonic(), n))
                        last_change = time.monotonic()
                    if n >= windows:
                        break
            finally:
                req = urllib.request.Request(
                    f"http://localhost:{cluster.rest_port}/jobs/{job_id}?mode=cancel", method="PATCH"
                )
                urllib.request.urlopen(req, timeout=10).close()
            rates[p] = steady_rate(progress)
            with urllib.request.urlopen(f"http://localhost:{cluster.rest_port}/jobs/{job_id}", timeout=10) as r:
                ran = {v["parallelism"] for v in json.load(r)["vertices"]}
            assert ran == {p}, f"the job asked for parallelism {p} and ran at {ran}"
            print(f"standalone cluster, parallelism {p}: {progress[-1][1]:,} windows scored", flush=True)
    finally:
        cluster.stop()
    return rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=334, help="x 3 tags = sensors")
    ap.add_argument("--minutes", type=float, default=60.0, help="event time preloaded for the throughput run")
    ap.add_argument("--paced-rate", type=float, default=20_000.0, help="readings/s of the latency run")
    ap.add_argument("--paced-s", type=float, default=60.0, help="wall seconds of the latency run")
    ap.add_argument("--work", default=".sensorwatch/bench-pipeline")
    ap.add_argument("--skip-paced", action="store_true", help="leave out the latency runs (their figures are null)")
    ap.add_argument(
        "--parallelism", type=int, default=2, help="the standalone cluster's run: parallelism 1 against this"
    )
    args = ap.parse_args()

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)  # an earlier run's broker data: gigabytes
    s = fleet_settings(work, args.devices)
    stack = LocalStack(s)
    s.kafka.bootstrap_servers = stack.up()["bootstrap_servers"]
    server = None
    try:
        s.simulator.duration_s = args.minutes * 60
        fleet = Fleet(s.simulator)
        n_sensors = len(fleet.sensors)
        t = time.monotonic()
        out = local.train_on_history(s, fleet.start_ms, hours=1.0)
        print(f"trained {out['trained']} sensors in {time.monotonic() - t:.0f} s", flush=True)
        server = local.ModelServerProcess(s, work / "server.log").start()

        # throughput on a backlog
        a = bench_topics(s)
        stats = simulate(a.simulator, a.kafka, fleet=fleet)
        local.flush_watermark(a, fleet.end_ms + 120_000)
        total = stats.readings
        kafka_rate = raw_consume_rate(a, total)
        print(f"preloaded {total:,} readings; raw consume {kafka_rate:,.0f}/s", flush=True)
        job = run(a, detached=True)
        progress, _ = collect(a, [a.kafka.topics.scores, a.kafka.topics.anomalies], quiet_s=20, max_s=1200)
        job.cancel().result()
        windows = progress[-1][1]
        expected = n_sensors * (int(args.minutes * 60 / s.job.window_s) - s.job.seq_len + 1)
        readings_per_window = total / (windows + n_sensors * (s.job.seq_len - 1))
        readings_rate = steady_rate(progress) * readings_per_window
        print(
            f"scored {windows:,} windows (about {expected:,} expected); job throughput {readings_rate:,.0f} readings/s",
            flush=True,
        )
        # The rates come from plain runs. JFR's profile recording and the REST sampling slow the
        # job they watch (measured: 20,918 readings/s profiled against 44,034 plain, same job,
        # same run), so the profile is a run of its own, after them.
        memory: dict = {}
        default_progress = default_config_rate(a, windows, memory=memory)
        default_rate = steady_rate(default_progress) * readings_per_window
        print(
            f"default configuration: {default_progress[-1][1]:,} windows scored; "
            f"job throughput {default_rate:,.0f} readings/s",
            flush=True,
        )
        print(f"memory of the default job at {n_sensors:,} sensors: {memory}", flush=True)
        bare_progress = default_config_rate(a, windows, incidents=False)
        bare_rate = steady_rate(bare_progress) * readings_per_window
        # the same default job once more, after the run without the stage: how far two runs of
        # one job lie apart on this machine, which the stage's ratio must be read against
        again_rate = steady_rate(default_config_rate(a, windows)) * readings_per_window
        print(
            f"without the incident stage: {bare_progress[-1][1]:,} windows scored; "
            f"job throughput {bare_rate:,.0f} readings/s; the default job again {again_rate:,.0f} readings/s; "
            f"with the stage {(default_rate + again_rate) / 2 / bare_rate:.2f}x (mean of the two default runs)",
            flush=True,
        )
        # the batching of the sessions before job.batch_shards: one scoring batch per packed model
        shards = a.job.batch_shards
        a.job.batch_shards = s.serving.packed_groups
        per_model_rate = steady_rate(default_config_rate(a, windows)) * readings_per_window
        a.job.batch_shards = shards
        print(
            f"one scoring batch per packed model ({s.serving.packed_groups} a window end): {per_model_rate:,.0f} "
            f"readings/s; the default's batches {(default_rate + again_rate) / 2 / per_model_rate:.2f}x that",
            flush=True,
        )
        stages: dict = {}
        jfr_path = work / "default-job.jfr"
        profiled = default_config_rate(a, windows, stages=stages, profile=jfr_path)
        profiled_rate = steady_rate(profiled) * readings_per_window
        profile = jfr_summary(jfr_path)
        print(
            f"JFR profile of the default job ({jfr_path}, {profile['samples']:,} execution samples; "
            f"profiled, the job read {profiled_rate:,.0f} readings/s):"
        )
        for what in ("threads", "self"):
            print(f"  by {'thread' if what == 'threads' else 'method (self)'}:")
            for name, share in profile[what]:
                print(f"    {share:6.1%}  {name}")
        print("the default job's tasks, ms per second (mean of subtasks, steady part of the backlog):")
        print(f"{'busy':>7}{'idle':>7}{'backp.':>8}  task")
        for task, t in stages.items():
            print(f"{t[TIME_METRICS[0]]:>7.0f}{t[TIME_METRICS[1]]:>7.0f}{t[TIME_METRICS[2]]:>8.0f}  {task[:150]}")

        # the same fleet as device messages (3 tags per message), through the default job
        d = bench_topics(s)
        d.kafka.readings_format = "device"
        dstats = simulate(d.simulator, d.kafka, fleet=fleet)
        local.flush_watermark(d, fleet.end_ms + 120_000)
        device_raw = raw_consume_rate(d, dstats.messages)
        device_progress = default_config_rate(d, windows)
        device_rate = steady_rate(device_progress) * dstats.readings / (windows + n_sensors * (s.job.seq_len - 1))
        print(
            f"device messages: {dstats.messages:,} messages of {dstats.readings / dstats.messages:.2f} readings; "
            f"raw consume {device_raw * dstats.readings / dstats.messages:,.0f} readings/s; "
            f"default job {device_progress[-1][1]:,} windows scored, {device_rate:,.0f} readings/s "
            f"({device_rate / default_rate:.2f}x the one-reading format)",
            flush=True,
        )

        # the default job on a standalone cluster at parallelism 1 and N, same backlog
        slot_rates = {
            p: r * readings_per_window for p, r in standalone_rates(a, windows, work, args.parallelism).items()
        }
        n = args.parallelism
        print(
            f"standalone cluster: parallelism 1 {slot_rates[1]:,.0f} readings/s; parallelism {n} "
            f"{slot_rates[n]:,.0f} readings/s ({slot_rates[n] / n:,.0f} per slot, {slot_rates[n] / slot_rates[1]:.2f}x)",
            flush=True,
        )

        # latency under a paced load: the default job (anomaly records only), then every score
        paced = {}
        for label, emit in (("anomalies", False), ("all_scores", True)):
            if args.skip_paced:
                paced[label] = {"readings_per_s": None, "records": None, "p50_s": None, "p99_s": None, "max_s": None}
                continue
            paced[label] = paced_latency(s, args, n_sensors, emit_scores=emit)
            print(f"paced {label}: {paced[label]}", flush=True)
        figures = {
            "sensors": n_sensors,
            "readings_per_s": round(default_rate),
            "kafka_consume_per_s": round(kafka_rate),
            "ratio": round(default_rate / kafka_rate, 3),
            "default_windows_scored": default_progress[-1][1],
            "no_incident_stage_readings_per_s": round(bare_rate),
            "default_again_readings_per_s": round(again_rate),
            "profiled_readings_per_s": round(profiled_rate),
            "incident_stage_ratio": round((default_rate + again_rate) / 2 / bare_rate, 3),
            "batch_per_model_readings_per_s": round(per_model_rate),
            "batch_shards_ratio": round((default_rate + again_rate) / 2 / per_model_rate, 3),
            "all_scores_readings_per_s": round(readings_rate),
            "all_scores_ratio": round(readings_rate / kafka_rate, 3),
            **{f"job_{k}": v for k, v in memory.items()},
            "default_stage_ms_per_s": {
                task[:100]: [t[m] for m in TIME_METRICS] for task, t in stages.items()
            },  # [busy, idle, back-pressured]
            "default_jfr_threads": profile["threads"],
            "default_jfr_self": profile["self"],
            "standalone_parallelism_1_readings_per_s": round(slot_rates[1]),
            f"standalone_parallelism_{n}_readings_per_s": round(slot_rates[n]),
            f"parallelism_{n}_per_slot_readings_per_s": round(slot_rates[n] / n),
            f"parallelism_{n}_ratio": round(slot_rates[n] / slot_rates[1], 3),
            "device_format_readings_per_s": round(device_rate),
            "device_format_ratio": round(device_rate / default_rate, 3),
            "device_format_readings_per_message": round(dstats.readings / dstats.messages, 3),
            "device_format_kafka_consume_readings_per_s": round(device_raw * dstats.readings / dstats.messages),
            "device_format_windows_scored": device_progress[-1][1],
            "backlog_readings": total,
            "backlog_windows_scored": windows,
            "paced_readings_per_s": paced["anomalies"]["readings_per_s"],
            "paced_anomaly_records": paced["anomalies"]["records"],
            "p50_latency_s": paced["anomalies"]["p50_s"],
            "p99_latency_s": paced["anomalies"]["p99_s"],
            "max_latency_s": paced["anomalies"]["max_s"],
            "all_scores_paced_readings_per_s": paced["all_scores"]["readings_per_s"],
            "all_scores_windows": paced["all_scores"]["records"],
            "all_scores_p50_latency_s": paced["all_scores"]["p50_s"],
            "all_scores_p99_latency_s": paced["all_scores"]["p99_s"],
        }
    finally:
        if server is not None:
            server.stop()
        stack.down()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
