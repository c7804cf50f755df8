"""``sensorwatch serve``, ``models`` and ``score``: the model server and its client."""

from __future__ import annotations

import argparse
import json
import sys

from sensorwatch.app.cli.common import print_json
from sensorwatch.core.config import Settings
from sensorwatch.core.optional import require


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    server = require("sensorwatch.serving.server", extra="serving")
    from sensorwatch.serving.flags import server_argv

    argv = list(args.serve_args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    return server.main(server_argv(settings.serving, argv))


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """Models in the repository's models.config, with each version's state on the server."""
    require("grpc", extra="serving")
    import grpc

    from sensorwatch.serving.client import ScoringClient
    from sensorwatch.serving.protos import pb
    from sensorwatch.serving.repository import ModelRepository

    repo = ModelRepository(settings.serving.model_base_path, settings.serving.config_file)
    client = ScoringClient(settings.serving)
    rows = []
    try:
        for entry in repo.read_config():
            row = {
                "model": entry.name,
                "policy": entry.policy,
                "labels": entry.labels,
                "on_disk": repo.versions(entry.name),
            }
            try:
                row["served"] = {
                    str(s.version): pb.get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
                    for s in client.status(entry.name)
                }
            except grpc.RpcError as exc:
                row["served"] = f"{exc.code().name}: {exc.details()}"
            rows.append(row)
    finally:
        client.close()
    print_json(rows)
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    """Pin a model to an earlier version and wait until the server answers with it alone."""
    require("grpc", extra="serving")
    from sensorwatch.serving.client import ScoringClient, wait_alone
    from sensorwatch.serving.repository import ModelRepository, RepositoryError

    repo = ModelRepository(settings.serving.model_base_path, settings.serving.config_file)
    try:
        before, to = repo.rollback(args.model, args.to)
    except RepositoryError as exc:
        print(f"sensorwatch models rollback: {exc}", file=sys.stderr)
        return 2
    client = ScoringClient(settings.serving)
    try:
        done, served = wait_alone(client, args.model, to, args.wait_s)
    finally:
        client.close()
    print_json({"model": args.model, "from": before, "to": to, "served": served, "done": done})
    if not done:
        print(
            f"sensorwatch models rollback: models.config pins {args.model} to version {to}, but the server at "
            f"{settings.serving.target} did not serve it alone within {args.wait_s:g} s (is it running, and "
            f"polling {repo.config_file}?)",
            file=sys.stderr,
        )
    return 0 if done else 1


def cmd_unpin(args: argparse.Namespace, settings: Settings) -> int:
    """Serve a pinned model's newest version again."""
    from sensorwatch.serving.repository import ModelRepository, RepositoryError

    repo = ModelRepository(settings.serving.model_base_path, settings.serving.config_file)
    try:
        e = repo.unpin(args.model)
    except RepositoryError as exc:
        print(f"sensorwatch models unpin: {exc}", file=sys.stderr)
        return 2
    print_json({"model": e.name, "policy": e.policy, "serves": repo.served_version(e.name)})
    return 0


def cmd_score(args: argparse.Namespace, settings: Settings) -> int:
    """Score windows given as JSON arrays (one window per line, or one list of windows)."""
    require("grpc", extra="serving")
    import numpy as np

    from sensorwatch.serving.client import ScoringClient

    text = args.window if args.window else sys.stdin.read()
    windows = []
    for line in text.strip().splitlines():
        obj = json.loads(line)
        windows.extend(obj if obj and isinstance(obj[0], list) else [obj])
    client = ScoringClient(settings.serving)
    try:
        r = client.score(
            args.model,
            np.asarray(windows, dtype=np.float32),
            sensors=[args.sensor] * len(windows) if args.sensor else None,
            version=args.version,
            label=args.label,
        )
    finally:
        client.close()
    for i in range(len(windows)):
        print_json(
            {
                "model": r.model_name,
                "version": r.model_version,
                "score": float(r.score[i]),
                "threshold": float(r.threshold[i]),
                "is_anomaly": bool(r.is_anomaly[i]),
            }
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "serve",
        help="run the TF-Serving-compatible model server",
        description="TensorFlow Serving's gRPC API (PredictionService, ModelService) over the model "
        "repository. Flags after -- are tensorflow_model_server's: --port, --model_config_file, "
        "--model_config_file_poll_wait_seconds, --model_name, --model_base_path, ... "
        "Defaults come from the serving section of the configuration.",
    )
    s.add_argument("serve_args", nargs=argparse.REMAINDER, help="server flags, e.g. -- --port 8500")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("models", help="list models, versions and their state on the model server; roll back")
    s.set_defaults(func=cmd_models)
    msub = s.add_subparsers(dest="models_command", metavar="{rollback,unpin}")
    r = msub.add_parser(
        "rollback",
        help="serve an earlier version of a model, with no failed request",
        description="Pins the model to VERSION (default: the newest version below the one served now), "
        "labelled stable, in models.config; the server loads it while the current version answers, then "
        "unloads the current one. Waits until the server answers with it alone. The model stays pinned "
        "until `sensorwatch models unpin`.",
    )
    r.add_argument("model")
    r.add_argument("--to", type=int, metavar="VERSION", help="the version to serve; default: the one before")
    r.add_argument("--wait-s", type=float, default=60.0, help="how long to wait for the server (default 60)")
    r.set_defaults(func=cmd_rollback)
    u = msub.add_parser("unpin", help="serve a model's newest version again after a rollback")
    u.add_argument("model")
    u.set_defaults(func=cmd_unpin)

    s = sub.add_parser(
        "score",
        help="score a window (JSON array of S values) on the model server",
        description="A window on the command line, or JSON lines on stdin.",
    )
    s.add_argument("model", help="model name")
    s.add_argument("window", nargs="?", help="JSON array of S values; default: read stdin")
    s.add_argument("--version", type=int)
    s.add_argument("--label", help="version label, e.g. stable or canary")
    s.add_argument("--sensor", help="packed models: the sensor id")
    s.set_defaults(func=cmd_score)
