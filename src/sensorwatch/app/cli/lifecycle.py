"""``sensorwatch lifecycle``: retrain the sensors that are due, judge each new version against
the one serving, and promote only a better one (:mod:`sensorwatch.training.lifecycle`)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from sensorwatch.app.cli.common import print_json
from sensorwatch.core.config import Settings
from sensorwatch.core.optional import check

log = logging.getLogger(__name__)


def cmd_lifecycle(args: argparse.Namespace, settings: Settings) -> int:
    check("train")
    from sensorwatch.serving.client import ScoringClient
    from sensorwatch.stack.topics import retention_shortfall
    from sensorwatch.training.lifecycle import cycle_once

    lc = settings.lifecycle
    shortfall = retention_shortfall(settings)
    if shortfall:
        log.warning("lifecycle: %s", shortfall)
    if args.check_s is not None:
        lc.check_s = args.check_s
    client = ScoringClient(settings.serving, attempts=0)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while True:
            verdicts = cycle_once(settings, client, only=args.sensors)
            print_json(
                [{k: v[k] for k in ("model", "challenger", "champion", "stage", "reason", "why")} for v in verdicts]
            )
            if args.once or args.sensors or stop.wait(lc.check_s):
                break
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "lifecycle",
        help="retrain due sensors from the aggregates topic, judge each new version, promote only better ones",
        description=__doc__,
    )
    s.add_argument("--once", action="store_true", help="one pass, then exit")
    s.add_argument(
        "--sensors",
        default=None,
        help="an operator's request: retrain and judge these sensors (shell-style selectors) now, then exit",
    )
    s.add_argument("--check-s", type=float, default=None, help="seconds between passes (lifecycle.check_s)")
    s.set_defaults(func=cmd_lifecycle)
