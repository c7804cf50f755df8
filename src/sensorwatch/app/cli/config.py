"""``sensorwatch config``: validate or print the configuration."""

from __future__ import annotations

import argparse
import json

from sensorwatch.core.config import Settings, defaults_yaml


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "show":
        print(json.dumps(json.loads(settings.model_dump_json()), indent=2))
    elif args.action == "defaults":
        print(defaults_yaml(), end="")
    else:
        print("configuration is valid")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("config", help="validate or print the effective configuration")
    s.add_argument(
        "action",
        choices=["check", "show", "defaults"],
        help="check: validate; show: the effective values; defaults: the documented default file",
    )
    s.set_defaults(func=cmd_config)
