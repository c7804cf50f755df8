"""``sensorwatch job`` and ``tail``: the streaming job, and its output topics."""

from __future__ import annotations

import argparse
import json

from sensorwatch.app.cli.common import incident_line, record_line
from sensorwatch.core.config import Settings, TopicsConfig, add_overrides_argument
from sensorwatch.core.optional import require


def cmd_job(args: argparse.Namespace, settings: Settings) -> int:
    """The streaming job on an in-process Flink mini-cluster (``flink run -py`` for a cluster)."""
    pipeline = require("sensorwatch.jobs.pipeline", extra="job")
    if args.explain:
        print(pipeline.explain(settings))
        return 0
    pipeline.run(settings)
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    """Follow the incidents (or another output) topic and print one line per record."""
    from sensorwatch.app.local import tail

    topic = getattr(settings.kafka.topics, args.topic)
    try:
        for rec in tail(settings, topic, from_beginning=args.from_beginning):
            if args.json:
                line = json.dumps(rec)
            elif "incident_id" in rec:
                line = incident_line(rec)
            elif "sensor" in rec and "window_end" in rec:
                line = record_line(rec)
            else:
                line = json.dumps(rec)
            print(line, flush=True)
    except KeyboardInterrupt:
        return 130
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "job",
        help="run the streaming job on an in-process Flink mini-cluster",
        description="Same job as `flink run -py jobs/anomaly_job.py`; configuration from --config, "
        "the environment and --set.",
    )
    add_overrides_argument(s)  # as `flink run -py jobs/anomaly_job.py` takes it
    s.add_argument("--explain", action="store_true", help="print the optimised SQL plan and exit")
    s.set_defaults(func=cmd_job)

    s = sub.add_parser("tail", help="follow the incidents topic (one line per incident opened or closed)")
    s.add_argument(
        "--topic", default="incidents", choices=list(TopicsConfig.model_fields), help="which of kafka.topics to follow"
    )
    s.add_argument("--from-beginning", dest="from_beginning", action="store_true")
    s.add_argument("--json", action="store_true", help="print whole records")
    s.set_defaults(func=cmd_tail)
