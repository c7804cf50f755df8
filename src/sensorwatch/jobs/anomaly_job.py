"""Entry point of the streaming job on a Flink cluster.

``flink run -py jobs/anomaly_job.py [--config FILE] [--set SECTION.KEY=VALUE ...]`` from a
checkout, or ``flink run -pym sensorwatch.jobs.anomaly_job ...`` where sensorwatch is installed.
``sensorwatch job`` runs the same job on an in-process Flink mini-cluster. Configuration comes
from the YAML file, ``SENSORWATCH__*`` environment variables and ``--set`` (see
``config/sensorwatch.yaml``), the same configuration type and override parser every command uses.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# `flink run -py` runs this file as a script: make the package importable when it is not
# installed (it is, in the virtualenv and the Docker image; this keeps a bare checkout working).
_SRC = Path(__file__).resolve().parents[2]
if str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from sensorwatch.core.config import ConfigError, add_overrides_argument, load_settings, parse_overrides  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="anomaly_job", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=os.environ.get("SENSORWATCH_CONFIG"), help="YAML configuration file")
    add_overrides_argument(p)
    p.add_argument("--explain", action="store_true", help="print the optimised SQL plan and exit")
    p.add_argument("--detached", action="store_true", help="submit and return (the job keeps running)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings(args.config, overrides=parse_overrides(args.set))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from sensorwatch.jobs.pipeline import explain, run

    if args.explain:
        print(explain(settings))
        return 0
    result = run(settings, detached=args.detached)
    if args.detached:
        print(f"submitted job {result.get_job_id()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
