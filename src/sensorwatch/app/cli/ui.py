"""``sensorwatch ui``: the web dashboard over the output topics (:mod:`sensorwatch.dashboard`)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from sensorwatch.app.cli.common import parse_duration
from sensorwatch.core.config import Settings
from sensorwatch.core.optional import check


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    check("ui")
    from sensorwatch.dashboard.app import Dashboard

    d = settings.dashboard
    if args.host:
        d.host = args.host
    if args.port is not None:
        d.port = args.port
    if args.from_start:
        d.from_start = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Dashboard(settings) as ui:
        print(
            f"sensorwatch dashboard at {ui.url} (reading {settings.kafka.bootstrap_servers}); Ctrl-C stops",
            file=sys.stderr,
        )
        try:
            stop.wait(args.for_s)
        except KeyboardInterrupt:
            pass
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "ui",
        help="serve the web dashboard: the fleet, each sensor's chart and incidents, the models",
        description="Reads the output topics into bounded memory and serves pages that update live.",
    )
    s.add_argument("--host", help="address to listen on (dashboard.host)")
    s.add_argument("--port", type=int, help="port (dashboard.port; 0 picks a free one)")
    s.add_argument("--from-start", dest="from_start", action="store_true", help="read the topics from their start")
    s.add_argument("--for", dest="for_s", type=parse_duration, help="stop after this long (default: run until stopped)")
    s.set_defaults(func=cmd_ui)
