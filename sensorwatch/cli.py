"""The ``sensorwatch`` command line. Each subcommand has ``--help``.

Heavy imports (TensorFlow, PyFlink, gRPC) happen inside the subcommand that needs them,
so ``sensorwatch stack up`` starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from sensorwatch.config import ConfigError, Settings, load_settings

log = logging.getLogger("sensorwatch")

Handler = Callable[[argparse.Namespace, Settings], int]
_COMMANDS: dict[str, Handler] = {}


def _print(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


# --------------------------------------------------------------------------- stack
def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from sensorwatch.stack import LocalStack

    stack = LocalStack(settings)
    if args.action == "up":
        _print(stack.up())
    elif args.action == "down":
        print("stopped" if stack.down() else "not running")
    else:
        status = stack.status()
        _print(status)
        return 0 if status["running"] else 3
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    """Create the configured topics on the configured Kafka (any cluster, not only the local one)."""
    from sensorwatch.stack.topics import describe_topics, ensure_topics

    created = ensure_topics(settings.kafka, settings.stack.message_max_bytes)
    present = describe_topics(settings.kafka)
    missing = sorted(set(settings.kafka.topics.all()) - set(present))
    _print({"bootstrap_servers": settings.kafka.bootstrap_servers, "created": created, "partitions": present,
            "missing": missing})
    return 1 if missing else 0


def cmd_jars(args: argparse.Namespace, settings: Settings) -> int:
    from sensorwatch import jars

    was = jars.up_to_date()
    out = jars.fetch(quiet=not args.verbose)
    print(f"{out} ({'up to date, nothing downloaded' if was else 'fetched'})")
    return 0


# --------------------------------------------------------------------------- simulate
def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from sensorwatch.simulate import simulate

    sim = settings.simulator
    for name in ("devices", "duration_s", "interval_s", "seed", "realtime", "speed", "late_rate", "malformed_rate",
                 "anomaly_rate_per_hour", "out_of_order_rate"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(sim, name, value)
    if args.tags:
        sim.tags = args.tags.split(",")
    if args.labels_file:
        sim.labels_file = Path(args.labels_file)
    stats = simulate(sim, settings.kafka)
    _print(stats.to_dict())
    return 0


# --------------------------------------------------------------------------- config
def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "show":
        print(json.dumps(json.loads(settings.model_dump_json()), indent=2))
    elif args.action == "defaults":
        from sensorwatch.config import defaults_yaml

        print(defaults_yaml(), end="")
    else:
        print("configuration is valid")
    return 0


# --------------------------------------------------------------------------- serving
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from serving.server import main as serve_main
    except ImportError as exc:
        print(f"sensorwatch serve needs TensorFlow ({exc}): pip install 'sensorwatch[serving]'", file=sys.stderr)
        return 2
    sv = settings.serving
    argv = list(args.serve_args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not any(a.startswith("--port") for a in argv):
        argv += ["--port", str(sv.port)]
    if not any(a.startswith("--host") for a in argv):
        argv += ["--host", sv.host]
    if not any(a.startswith(("--model_config_file", "--model_name")) for a in argv):
        argv += ["--model_config_file", str(sv.config_file),
                 "--model_config_file_poll_wait_seconds", str(sv.poll_wait_s)]
    if not any(a.startswith("--file_system_poll_wait_seconds") for a in argv):
        argv += ["--file_system_poll_wait_seconds", str(sv.poll_wait_s)]
    if sv.tls_cert and sv.tls_key and not any(a.startswith("--ssl_cert") for a in argv):
        argv += ["--ssl_cert", str(sv.tls_cert), "--ssl_key", str(sv.tls_key)]
    return serve_main(argv)


def _client(settings: Settings):
    from serving.client import ClientConfig, ScoringClient

    return ScoringClient(ClientConfig.from_settings(settings.serving))


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """Models in the repository's models.config, with each version's state on the server."""
    import grpc

    from serving.protos import pb
    from serving.repository import ModelRepository

    repo = ModelRepository(settings.serving.model_base_path, settings.serving.config_file)
    client = _client(settings)
    rows = []
    for entry in repo.read_config():
        row = {"model": entry.name, "policy": entry.policy, "labels": entry.labels,
               "on_disk": repo.versions(entry.name)}
        try:
            row["served"] = {str(s.version): pb.get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
                             for s in client.status(entry.name)}
        except grpc.RpcError as exc:
            row["served"] = f"{exc.code().name}: {exc.details()}"
        rows.append(row)
    client.close()
    _print(rows)
    return 0


def cmd_score(args: argparse.Namespace, settings: Settings) -> int:
    """Score windows given as JSON arrays (one window per line, or one list of windows)."""
    import numpy as np

    text = args.window if args.window else sys.stdin.read()
    windows = []
    for line in text.strip().splitlines():
        obj = json.loads(line)
        windows.extend(obj if obj and isinstance(obj[0], list) else [obj])
    client = _client(settings)
    r = client.score(args.model, np.asarray(windows, dtype=np.float32),
                     sensors=[args.sensor] * len(windows) if args.sensor else None,
                     version=args.version, label=args.label)
    client.close()
    for i in range(len(windows)):
        _print({"model": r.model_name, "version": r.model_version, "score": float(r.score[i]),
                "threshold": float(r.threshold[i]), "is_anomaly": bool(r.is_anomaly[i])})
    return 0


def _training_data(args: argparse.Namespace, settings: Settings, window_ms: int):
    """(series per sensor, labels or None) from the source named on the command line."""
    from training.data import from_files, from_kafka, select

    if args.source == "kafka":
        return from_kafka(settings.kafka, settings.kafka.topics.aggregates, args.ts_from, args.ts_to, args.sensors), None
    if args.source == "simulate":
        from sensorwatch.simulate.history import fleet_history, label_intervals

        series, labs = fleet_history(settings.simulator, window_ms)
        series = {k: series[k].between(args.ts_from, args.ts_to) for k in select(series, args.sensors)}
        return series, (label_intervals(labs) if args.use_labels else None)
    paths = [Path(p) for p in args.source.split(",")]
    return from_files(paths, window_ms, args.ts_from, args.ts_to, args.sensors), None


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train every sensor matching --sensors on its history and publish the models."""
    try:
        from training import require_train_extra

        require_train_extra()
    except ImportError as exc:
        print(exc, file=sys.stderr)
        return 2
    from training.trainer import summary, train_fleet

    tr = settings.training
    for key in ("kind", "epochs", "workers"):
        if getattr(args, key) is not None:
            setattr(tr, key, getattr(args, key))
    if args.layout:
        settings.serving.layout = args.layout
    window_ms = int(settings.job.window_s * 1000)
    try:
        series, labels = _training_data(args, settings, window_ms)
    except (ValueError, OSError) as exc:
        print(f"sensorwatch train: cannot read {args.source}: {exc}", file=sys.stderr)
        return 2
    if not series:
        print("no sensors matched; nothing to train", file=sys.stderr)
        return 1
    if args.tune:
        from training.tune import tune

        _print(tune(series, settings, trials=args.tune, labels=labels))
        return 0
    out = train_fleet(series, settings, labels=labels, force=args.force, progress=not args.quiet)
    result = summary(out)
    _print(result)
    return 3 if result["failed"] else 0


# --------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """The embedded default, end to end: Kafka, training, model server, the job, the fleet."""
    import threading
    import time

    from rich.console import Console
    from rich.table import Table

    from jobs import local
    from jobs.pipeline import run
    from sensorwatch.evaluate import evaluate
    from sensorwatch.simulate import Fleet, simulate
    from sensorwatch.stack import LocalStack
    from sensorwatch.stack.kafka_broker import free_port

    console = Console()
    import shutil

    work = Path(settings.stack.work_dir) / "demo"
    shutil.rmtree(work, ignore_errors=True)  # a fresh broker and model repository every run
    settings.stack.work_dir = work
    settings.stack.kafka_port = settings.stack.controller_port = 0
    port = free_port()
    settings.serving.port, settings.serving.target = port, f"127.0.0.1:{port}"
    settings.serving.model_base_path = work / "models"
    settings.serving.layout = "packed"  # 30 sensors, one Predict per packed model and window end
    settings.serving.poll_wait_s = 0.5
    sim = settings.simulator
    sim.duration_s = args.duration_s
    sim.late_rate, sim.malformed_rate, sim.realtime, sim.speed = 0.002, 0.002, True, args.speed
    sim.anomaly_rate_per_hour = 4.0
    settings.training.epochs, settings.training.plots = 20, False
    fleet = Fleet(sim)
    stack = LocalStack(settings)
    server = None
    job = None
    console.print("[bold]1/5[/] starting a real Kafka broker (KRaft) on loopback ...")
    info = stack.up()
    console.print(f"    ready in {info['start_seconds']} s at {info['bootstrap_servers']}")
    try:
        console.print(f"[bold]2/5[/] training one model per sensor ({len(fleet.sensors)}) on 2 h of clean simulated history ...")
        t0 = time.monotonic()
        out = local.train_on_history(settings, fleet.start_ms, progress=True)
        console.print(f"    {out['trained']} trained, {out['failed']} failed in {time.monotonic() - t0:.0f} s "
                      f"into {settings.serving.model_base_path}")
        console.print("[bold]3/5[/] starting the model server (TF Serving gRPC API) ...")
        server = local.ModelServerProcess(settings, work / "model-server.log").start()
        console.print(f"    serving at {settings.serving.target}; log: {work / 'model-server.log'}")
        console.print("[bold]4/5[/] starting the streaming job on a Flink mini-cluster ...")
        job = run(settings, detached=True)
        console.print(f"    job {job.get_job_id()}")
        console.print(f"[bold]5/5[/] streaming {len(fleet.sensors)} sensors x {sim.duration_s / 60:.0f} min of event time "
                      f"at {sim.speed:.0f}x, {len(fleet.labels)} anomalies injected; live anomalies "
                      "(as `sensorwatch tail` shows them):")
        anomalies: list[dict] = []
        stop = threading.Event()
        shown: set[str] = set()

        def show(rec, _msg) -> None:
            anomalies.append(rec)
            if rec["sensor"] not in shown:
                console.print(f"    [red]ANOMALY[/] {_line(rec)}", soft_wrap=True)
            shown.add(rec["sensor"])

        def follow() -> None:
            local.consume(settings, settings.kafka.topics.anomalies, lambda _r: stop.is_set(), 1e9, show)

        tailer = threading.Thread(target=follow, daemon=True)
        tailer.start()
        stats = simulate(sim, settings.kafka, fleet=fleet)
        local.flush_watermark(settings, fleet.end_ms + 120_000)
        time.sleep(8)
        stop.set()
        tailer.join(10)
        console.print(f"    {stats.readings} readings sent ({stats.malformed} malformed, {stats.late} late); "
                      f"{len(anomalies)} anomalous windows (first of each sensor shown)")
        ev = evaluate(anomalies, [lab.to_dict() for lab in fleet.labels])
        table = Table("kind", "detected / injected", title="against the simulator's ground truth")
        for kind, (hit, n) in sorted(ev.per_kind.items()):
            table.add_row(kind, f"{hit} / {n}")
        console.print(table)
        d = ev.to_dict()
        console.print(f"precision {d['precision']:.2f} ({ev.true_alerts}/{ev.alerts} alerts), recall {d['recall']:.2f} "
                      f"({ev.detected}/{ev.events} events), detection delay median {d['delay_s_median']} s, "
                      f"max {d['delay_s_max']} s (event time)")
    finally:
        if job is not None:
            job.cancel()
        if server is not None:
            server.stop()
        stack.down()
        console.print("job, model server and broker stopped")
    return 0


def _line(rec: dict) -> str:
    import time

    t = time.strftime("%H:%M:%S", time.gmtime(rec["window_end"] / 1000))
    if rec.get("status", "scored") != "scored":
        return f"{rec['sensor']} window to {t}: {rec['status']} ({rec.get('model_name')})"
    return (f"{rec['sensor']} window to {t}: score {rec['score']:.2f} > threshold {rec['threshold']:.2f} "
            f"({rec['model_name']} v{rec['model_version']})")


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    """Follow the anomalies (or another output) topic and print one line per record."""
    from jobs.local import tail

    topic = getattr(settings.kafka.topics, args.topic)
    try:
        for rec in tail(settings, topic, from_beginning=args.from_beginning):
            print(json.dumps(rec) if args.json else _line(rec) if "sensor" in rec and "window_end" in rec
                  else json.dumps(rec), flush=True)
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_job(args: argparse.Namespace, settings: Settings) -> int:
    """The streaming job on an in-process Flink mini-cluster (``flink run -py`` for a cluster)."""
    from jobs.pipeline import explain, run

    if args.explain:
        print(explain(settings))
        return 0
    run(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sensorwatch", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML configuration file (default: $SENSORWATCH_CONFIG, else built-in defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("stack", help="start, stop or inspect the local Kafka broker and topics",
                       description="The embedded local stack: a real Apache Kafka broker (KRaft) on loopback "
                       "with sensorwatch's topics. Data and logs under stack.work_dir.")
    s.add_argument("action", choices=["up", "down", "status"])
    _COMMANDS["stack"] = cmd_stack

    s = sub.add_parser("topics", help="create sensorwatch's topics on the configured Kafka (idempotent)",
                       description="Creates every topic of kafka.topics that does not exist yet, with "
                       "kafka.partitions, kafka.replication_factor and max.message.bytes = stack.message_max_bytes; "
                       "exits 1 if any is still missing.")
    _COMMANDS["topics"] = cmd_topics

    s = sub.add_parser("jars", help="fetch the JVM jars (Kafka broker, Flink connector, UDFs) with Maven",
                       description="Runs Maven on jvm/pom.xml once; later runs download nothing.")
    _COMMANDS["jars"] = cmd_jars

    s = sub.add_parser("simulate", help="publish a simulated fleet with injected anomalies to Kafka",
                       description="D devices x T tags; ground truth goes to the labels topic and --labels-file.")
    s.add_argument("--devices", type=int)
    s.add_argument("--tags", help="comma-separated tag kinds: temperature,pressure,vibration")
    s.add_argument("--duration-s", dest="duration_s", type=float, help="event time to simulate")
    s.add_argument("--interval-s", dest="interval_s", type=float, help="seconds between one sensor's readings")
    s.add_argument("--seed", type=int)
    s.add_argument("--realtime", action="store_true", default=None, help="pace event time to wall time")
    s.add_argument("--speed", type=float, help="with --realtime: event-time seconds per wall second")
    s.add_argument("--late-rate", dest="late_rate", type=float)
    s.add_argument("--malformed-rate", dest="malformed_rate", type=float)
    s.add_argument("--out-of-order-rate", dest="out_of_order_rate", type=float)
    s.add_argument("--anomaly-rate", dest="anomaly_rate_per_hour", type=float, help="per sensor per hour")
    s.add_argument("--labels-file", help="also write ground truth here (JSON lines)")
    _COMMANDS["simulate"] = cmd_simulate

    s = sub.add_parser("serve", help="run the TF-Serving-compatible model server",
                       description="TensorFlow Serving's gRPC API (PredictionService, ModelService) over the model "
                       "repository. Flags after -- are tensorflow_model_server's: --port, --model_config_file, "
                       "--model_config_file_poll_wait_seconds, --model_name, --model_base_path, ... "
                       "Defaults come from the serving section of the configuration.")
    s.add_argument("serve_args", nargs=argparse.REMAINDER, help="server flags, e.g. -- --port 8500")
    _COMMANDS["serve"] = cmd_serve

    s = sub.add_parser("models", help="list models, versions and their state on the model server")
    _COMMANDS["models"] = cmd_models

    s = sub.add_parser("score", help="score a window (JSON array of S values) on the model server",
                       description="A window on the command line, or JSON lines on stdin.")
    s.add_argument("model", help="model name")
    s.add_argument("window", nargs="?", help="JSON array of S values; default: read stdin")
    s.add_argument("--version", type=int)
    s.add_argument("--label", help="version label, e.g. stable or canary")
    s.add_argument("--sensor", help="packed models: the sensor id")
    _COMMANDS["score"] = cmd_score

    s = sub.add_parser("train", help="train one model per sensor (parallel, resumable) and publish them")
    s.add_argument("--source", default="kafka",
                   help="'kafka' (the aggregates topic), 'simulate' (the configured fleet's history) or CSV/Parquet files, comma-separated")
    s.add_argument("--sensors", default=None, help="shell-style selector(s), e.g. 'dev-00*/temperature,dev-01*/*'")
    s.add_argument("--from", dest="ts_from", type=int, default=None, help="window ends from this epoch ms")
    s.add_argument("--to", dest="ts_to", type=int, default=None, help="window ends before this epoch ms")
    s.add_argument("--kind", choices=["dense_ae", "lstm_ae", "conv_ae", "ocsvm"], default=None)
    s.add_argument("--layout", choices=["per-sensor", "packed"], default=None)
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--workers", type=int, default=None, help="processes (0 = all cores)")
    s.add_argument("--use-labels", action="store_true", help="simulate: calibrate on the ROC curve with the ground truth")
    s.add_argument("--force", action="store_true", help="retrain sensors whose model is up to date")
    s.add_argument("--tune", type=int, default=0, metavar="TRIALS",
                   help="instead of training, search hyperparameters (optuna TPE) over the selected sensors")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    _COMMANDS["train"] = cmd_train

    s = sub.add_parser("demo", help="run the embedded default end to end (local Kafka, simulated fleet)",
                       description="Starts its own stack on free ports, runs everything, stops it again.")
    s.add_argument("--duration-s", dest="duration_s", type=float, default=1800.0, help="event time to simulate")
    s.add_argument("--speed", type=float, default=40.0, help="event-time seconds streamed per wall second")
    _COMMANDS["demo"] = cmd_demo

    s = sub.add_parser("job", help="run the streaming job on an in-process Flink mini-cluster",
                       description="Same job as `flink run -py jobs/anomaly_job.py`; configuration from --config.")
    s.add_argument("--explain", action="store_true", help="print the optimised SQL plan and exit")
    _COMMANDS["job"] = cmd_job

    s = sub.add_parser("tail", help="follow the anomalies topic (one line per anomaly)")
    s.add_argument("--topic", default="anomalies", choices=["anomalies", "scores", "no_model", "dead_letters", "late",
                                                            "aggregates"])
    s.add_argument("--from-beginning", dest="from_beginning", action="store_true")
    s.add_argument("--json", action="store_true", help="print whole records")
    _COMMANDS["tail"] = cmd_tail

    s = sub.add_parser("config", help="validate or print the effective configuration")
    s.add_argument("action", choices=["check", "show", "defaults"],
                   help="check: validate; show: the effective values; defaults: the documented default file")
    _COMMANDS["config"] = cmd_config
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python is chatty at INFO
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"sensorwatch: {exc}", file=sys.stderr)
        return 2
    try:
        return _COMMANDS[args.command](args, settings)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
