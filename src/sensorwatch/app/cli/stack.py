"""``sensorwatch stack``, ``topics`` and ``jars``: the local broker, topics anywhere, the JVM jars."""

from __future__ import annotations

import argparse
import sys

from sensorwatch.app.cli.common import print_json
from sensorwatch.core.config import Settings


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from sensorwatch.stack import LocalStack

    stack = LocalStack(settings)
    if args.action == "up":
        print_json(stack.up())
    elif args.action == "down":
        print("stopped" if stack.down() else "not running")
    else:
        status = stack.status()
        print_json(status)
        return 0 if status["running"] else 3
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    """Create the configured topics on the configured Kafka (any cluster, not only the local one)."""
    from sensorwatch.stack.topics import describe_topics, ensure_topics, retention_shortfall

    created = ensure_topics(settings)
    present = describe_topics(settings.kafka)
    missing = sorted(set(settings.kafka.topics.all()) - set(present))
    shortfall = None if settings.kafka.topics.aggregates in missing else retention_shortfall(settings)
    print_json(
        {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "created": created,
            "partitions": present,
            "missing": missing,
            "warnings": [shortfall] if shortfall else [],
        }
    )
    return 1 if missing else 0


def cmd_jars(args: argparse.Namespace, settings: Settings) -> int:
    from sensorwatch.core import jars

    was = jars.up_to_date()
    try:
        out = jars.fetch(quiet=not args.verbose)
    except jars.JarsMissing as exc:
        print(f"sensorwatch jars: {exc}", file=sys.stderr)
        return 2
    if not (was and args.quiet):
        print(f"{out} ({'up to date, nothing downloaded' if was else 'fetched'})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "stack",
        help="start, stop or inspect the local Kafka broker and topics",
        description="The embedded local stack: a real Apache Kafka broker (KRaft) on loopback "
        "with sensorwatch's topics. Data and logs under stack.work_dir.",
    )
    s.add_argument("action", choices=["up", "down", "status"])
    s.set_defaults(func=cmd_stack)

    s = sub.add_parser(
        "topics",
        help="create sensorwatch's topics on the configured Kafka (idempotent)",
        description="Creates every topic of kafka.topics that does not exist yet, with "
        "kafka.partitions, kafka.replication_factor and max.message.bytes = stack.message_max_bytes, "
        "and the aggregates topic kept for at least the lifecycle's history_s + holdout_s (plus an hour). "
        "Exits 1 if any is still missing; warns, with the command that fixes it, when an existing "
        "aggregates topic keeps less than that.",
    )
    s.set_defaults(func=cmd_topics)

    s = sub.add_parser(
        "jars",
        help="fetch the JVM jars (Kafka broker, Flink connector, UDFs) with Maven",
        description="Runs Maven on jvm/pom.xml once; later runs download nothing.",
    )
    s.add_argument("--quiet", action="store_true", help="print nothing when the jars are already current")
    s.set_defaults(func=cmd_jars)
