"""The ``sensorwatch`` command line. Each subcommand has ``--help``.

One module per command group registers its subcommands with ``set_defaults(func=...)``; each
handler takes ``(args, settings)`` and returns the exit status. Heavy imports (TensorFlow,
PyFlink, gRPC) happen inside the handler that needs them, so ``sensorwatch stack up`` starts
in a fraction of a second.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sensorwatch.app.cli import alert, config, demo, job, lifecycle, serving, simulate, stack, train, ui
from sensorwatch.app.quiet import quiet_third_parties
from sensorwatch.core.config import ConfigError, load_settings, parse_overrides
from sensorwatch.core.optional import MissingExtra

#: The command groups, in the order ``--help`` lists them.
GROUPS = (stack, simulate, serving, train, lifecycle, job, alert, ui, demo, config)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sensorwatch", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML configuration file (default: $SENSORWATCH_CONFIG, else built-in defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_third_parties(args.verbose)
    try:
        settings = load_settings(args.config, overrides=parse_overrides(getattr(args, "set", None) or []))
    except ConfigError as exc:
        print(f"sensorwatch: {exc}", file=sys.stderr)
        return 2
    try:
        return args.func(args, settings)
    except MissingExtra as exc:
        print(f"sensorwatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
