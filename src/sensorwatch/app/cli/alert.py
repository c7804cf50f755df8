"""``sensorwatch alert`` and ``silence``: incidents to Alertmanager or a webhook, and operators' silences."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from sensorwatch.app.cli.common import parse_duration, print_json
from sensorwatch.core.config import Settings
from sensorwatch.core.feedback import VERDICTS


def cmd_alert(args: argparse.Namespace, settings: Settings) -> int:
    from sensorwatch.alerting.forwarder import AlertForwarder

    if args.target:
        settings.alerting.target = args.target
    if args.url:
        settings.alerting.url = args.url
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fwd = AlertForwarder(settings).start()
    print(
        f"forwarding {settings.kafka.topics.incidents} to {settings.alerting.target} at {fwd.target.url} "
        f"(group {settings.alerting.group_id}); Ctrl-C stops",
        file=sys.stderr,
    )
    deadline = time.monotonic() + args.for_s if args.for_s else None
    try:
        fwd.run(lambda: stop.is_set() or (deadline is not None and time.monotonic() >= deadline))
    except KeyboardInterrupt:
        pass
    finally:
        fwd.close()
    print_json(fwd.stats.to_dict())
    return 0


def cmd_silence(args: argparse.Namespace, settings: Settings) -> int:
    from sensorwatch.alerting.silences import publish_silence, silence_record

    if args.sensor is None:
        from sensorwatch.alerting.alerts import iso
        from sensorwatch.alerting.silences import Silences
        from sensorwatch.app.local import consume

        sil = Silences()
        for rec in consume(settings, settings.kafka.topics.silences, lambda _r: False, args.read_s):
            sil.apply(rec)
        print_json({p: iso(u) for p, u in sil.active(time.time() * 1000).items()})
        return 0
    rec = silence_record(args.sensor, 0 if args.lift else args.duration, args.comment)
    publish_silence(settings.kafka, rec)
    print_json(rec)
    return 0


def cmd_label(args: argparse.Namespace, settings: Settings) -> int:
    from sensorwatch.core.feedback import label_record
    from sensorwatch.core.kafka import send_one

    try:
        rec = label_record(args.incident_id, args.verdict, args.note)
    except ValueError as exc:
        print(f"sensorwatch label: {exc}", file=sys.stderr)
        return 2
    send_one(settings.kafka, settings.kafka.topics.labels, rec, key=rec["incident_id"])
    print_json(rec)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "alert",
        help="forward incidents to Prometheus Alertmanager (API v2) or a JSON webhook",
        description="Consumes the incidents topic and posts an opened incident as a firing alert and a "
        "closed one as resolved (alerting.*: target, url, min_severity, match). At least once: offsets "
        "commit only after the target accepted the batch; while it is down the forwarder retries with "
        "backoff. Prints its counts when it stops.",
    )
    s.add_argument("--target", choices=["alertmanager", "webhook"], help="override alerting.target")
    s.add_argument("--url", help="override alerting.url")
    s.add_argument("--for", dest="for_s", type=parse_duration, help="stop after this long (default: run until stopped)")
    s.set_defaults(func=cmd_alert)

    s = sub.add_parser(
        "silence",
        help="silence a sensor's alerts for a maintenance window (or list / lift silences)",
        description="Writes a silence to the silences topic: the alert forwarder holds back the alerts of "
        "matching sensors until it ends; an incident still open then fires. SENSOR is a shell-style "
        "pattern (dev-7/* silences a device). Without SENSOR: list the silences in force.",
    )
    s.add_argument("sensor", nargs="?", help="sensor id or pattern")
    s.add_argument("--for", dest="duration", type=parse_duration, default=3600.0, help="how long (default 1h)")
    s.add_argument("--comment", default="", help="why (kept with the silence)")
    s.add_argument("--lift", action="store_true", help="end the silence of SENSOR now")
    s.add_argument("--read-s", type=float, default=3.0, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_silence)

    s = sub.add_parser(
        "label",
        help="give an incident an operator's verdict: false-positive, true-positive or expected",
        description="Writes the verdict to the labels topic, keyed by the incident id (the latest one "
        "holds): the dashboard shows it beside the incident and the alert forwarder adds it to the alert.",
    )
    s.add_argument("incident_id", help="sensor@start, as `sensorwatch tail` and the alerts show it")
    s.add_argument("verdict", choices=VERDICTS)
    s.add_argument("--note", default="", help="why (kept with the verdict)")
    s.set_defaults(func=cmd_label)
