"""``sensorwatch demo``: the embedded default end to end (:mod:`sensorwatch.app.demo`)."""

from __future__ import annotations

import argparse

from sensorwatch.core.config import Settings
from sensorwatch.core.optional import check


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    for extra in ("job", "serving", "train", "ui"):
        check(extra)
    from sensorwatch.app.demo import run_demo

    return run_demo(settings, duration_s=args.duration_s, speed=args.speed)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "demo",
        help="run the embedded default end to end (local Kafka, simulated fleet)",
        description="Starts its own stack on free ports, runs everything, stops it again.",
    )
    s.add_argument("--duration-s", dest="duration_s", type=float, default=1800.0, help="event time to simulate")
    s.add_argument("--speed", type=float, default=40.0, help="event-time seconds streamed per wall second")
    s.set_defaults(func=cmd_demo)
