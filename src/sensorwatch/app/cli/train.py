"""``sensorwatch train``: one model per sensor (or per device), trained in parallel and published."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sensorwatch.app.cli.common import choices, print_json
from sensorwatch.core.config import ServingConfig, Settings, TrainingConfig
from sensorwatch.core.optional import check


def _training_data(args: argparse.Namespace, settings: Settings, window_ms: int):
    """(series per sensor, labels or None) from the source named on the command line."""
    from sensorwatch.training.data import from_files, from_kafka, select

    if args.source == "kafka":
        return from_kafka(
            settings.kafka, settings.kafka.topics.aggregates, args.ts_from, args.ts_to, args.sensors
        ), None
    if args.source == "simulate":
        from sensorwatch.simulate.history import fleet_history, label_intervals

        series, labs = fleet_history(settings.simulator, window_ms)
        series = {k: series[k].between(args.ts_from, args.ts_to) for k in select(series, args.sensors)}
        return series, (label_intervals(labs) if args.use_labels else None)
    paths = [Path(p) for p in args.source.split(",")]
    return from_files(paths, window_ms, args.ts_from, args.ts_to, args.sensors), None


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train every sensor matching --sensors on its history and publish the models."""
    check("train")
    from sensorwatch.training.trainer import summary, train_fleet

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
        from sensorwatch.training.tune import tune

        print_json(tune(series, settings, trials=args.tune, labels=labels))
        return 0
    result = summary(
        train_fleet(
            series,
            settings,
            labels=labels,
            force=args.force,
            progress=not args.quiet,
            granularity=args.granularity,
            priors=args.sensors is None,  # a tag's prior learns from the whole fleet, not a selection
        )
    )
    print_json(result)
    return 3 if result["failed"] else 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("train", help="train one model per sensor (parallel, resumable) and publish them")
    s.add_argument(
        "--source",
        default="kafka",
        help="'kafka' (the aggregates topic), 'simulate' (the configured fleet's history) or CSV/Parquet "
        "files, comma-separated",
    )
    s.add_argument(
        "--sensors",
        default=None,
        help="shell-style selector(s), e.g. 'dev-00*/temperature,dev-01*/*' (the fleet priors are trained "
        "only without a selector: on the whole fleet)",
    )
    s.add_argument("--from", dest="ts_from", type=int, default=None, help="window ends from this epoch ms")
    s.add_argument("--to", dest="ts_to", type=int, default=None, help="window ends before this epoch ms")
    s.add_argument("--kind", choices=choices(TrainingConfig, "kind"), default=None)
    s.add_argument(
        "--granularity",
        choices=["auto", "sensor", "device"],
        default="auto",
        help="sensor: one model per sensor; device: one model per device over all its tags; auto (default): "
        "device models for the devices serving.device_models selects, sensor models for the rest",
    )
    s.add_argument("--layout", choices=choices(ServingConfig, "layout"), default=None)
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--workers", type=int, default=None, help="processes (0 = all cores)")
    s.add_argument(
        "--use-labels", action="store_true", help="simulate: calibrate on the ROC curve with the ground truth"
    )
    s.add_argument("--force", action="store_true", help="retrain sensors whose model is up to date")
    s.add_argument(
        "--tune",
        type=int,
        default=0,
        metavar="TRIALS",
        help="instead of training, search hyperparameters (optuna TPE) over the selected sensors",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_train)
