"""Simulator throughput into the real local broker, and the broker's start time.

Side by side in one run (the machine is shared and noisy, so ratios matter more than
absolute numbers): the simulator's producer (confluent-kafka / librdkafka) against a
plain kafka-python producer sending the same payloads.

    .venv/bin/python bench/simulator.py [--devices 334 --duration-s 600]

Ends with one JSON line of its figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from sensorwatch.core.config import Settings
from sensorwatch.core.kafka import producer
from sensorwatch.simulate import Fleet, simulate
from sensorwatch.simulate.publish import _payloads
from sensorwatch.stack import LocalStack


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=334, help="x 3 tags = sensors")
    ap.add_argument("--duration-s", type=float, default=600.0)
    ap.add_argument(
        "--kafka-python-sample", type=int, default=100_000, help="readings sent through kafka-python for the comparison"
    )
    args = ap.parse_args()

    s = Settings()
    s.stack.work_dir = tempfile.mkdtemp(prefix="sw-bench-")
    s.stack.kafka_port = s.stack.controller_port = 0
    stack = LocalStack(s)
    t0 = time.monotonic()
    stack.up()
    start_s = time.monotonic() - t0
    try:
        s.simulator.devices = args.devices
        s.simulator.duration_s = args.duration_s
        fleet = Fleet(s.simulator)
        stats = simulate(s.simulator, s.kafka, fleet=fleet)

        # the same kind of payloads through kafka-python, for the ratio
        payloads = []
        for block in Fleet(s.simulator).blocks():
            payloads.extend(_payloads(fleet, block))
            if len(payloads) >= args.kafka_python_sample:
                break
        payloads = payloads[: args.kafka_python_sample]
        p = producer(s.kafka, acks="all")
        t0 = time.monotonic()
        for i, v in enumerate(payloads):
            p.send(s.kafka.topics.scores, v, key=b"dev-%04d" % (i % args.devices))
        p.flush(120)
        kp_rate = len(payloads) / (time.monotonic() - t0)
        p.close()
    finally:
        stack.down()

    ratio = stats.readings_per_s / kp_rate
    print(f"broker start (format + launch + ready): {start_s:.2f} s")
    print(
        f"simulator (confluent-kafka): {stats.readings:,} readings in {stats.seconds:.2f} s = "
        f"{stats.readings_per_s:,.0f} readings/s ({len(fleet.sensors)} sensors)"
    )
    print(
        f"kafka-python producer, same payloads: {len(payloads):,} in {len(payloads) / kp_rate:.2f} s = {kp_rate:,.0f}/s"
    )
    print(f"ratio simulator / kafka-python: {ratio:.1f}x")
    print(
        json.dumps(
            {
                "readings_per_s": round(stats.readings_per_s),
                "readings": stats.readings,
                "sensors": len(fleet.sensors),
                "kafka_python_per_s": round(kp_rate),
                "ratio": round(ratio, 2),
                "broker_start_s": round(start_s, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
