"""``sensorwatch simulate``: a simulated fleet with injected anomalies, published to Kafka."""

from __future__ import annotations

import argparse
from pathlib import Path

from sensorwatch.app.cli.common import choices, print_json
from sensorwatch.core.config import Settings, SimulatorConfig

#: Command-line options that set the simulator key of the same name.
_KEYS = (
    "devices",
    "duration_s",
    "interval_s",
    "seed",
    "realtime",
    "speed",
    "late_rate",
    "malformed_rate",
    "anomaly_rate_per_hour",
    "out_of_order_rate",
)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from sensorwatch.simulate import simulate

    sim = settings.simulator
    for name in _KEYS:
        value = getattr(args, name, None)
        if value is not None:
            setattr(sim, name, value)
    if args.tags:
        sim.tags = args.tags.split(",")
    if args.labels_file:
        sim.labels_file = Path(args.labels_file)
    print_json(simulate(sim, settings.kafka).to_dict())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "simulate",
        help="publish a simulated fleet with injected anomalies to Kafka",
        description="D devices x T tags; ground truth goes to the labels topic and --labels-file.",
    )
    s.add_argument("--devices", type=int)
    s.add_argument("--tags", help=f"comma-separated tag kinds of {', '.join(choices(SimulatorConfig, 'tags'))}")
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
    s.set_defaults(func=cmd_simulate)
