"""The JVM half of the reading contract, run inside a real Flink mini-cluster.

The same shared vectors as tests/sensorwatch/test_contracts.py: the job's JVM parser and
the Python mirror must give the same verdict and reason code for every case.
"""

import json
from pathlib import Path

import pytest

from sensorwatch.core.jars import fetch, flink_jars

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "readings.json").read_text())


@pytest.fixture(scope="module")
def table_env():
    from pyflink.table import EnvironmentSettings, TableEnvironment

    fetch()
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("pipeline.jars", ";".join(j.resolve().as_uri() for j in flink_jars()))
    env.get_config().set("parallelism.default", "1")
    env.execute_sql("CREATE TEMPORARY FUNCTION parse_reading AS 'io.sensorwatch.flink.ParseReading' LANGUAGE JAVA")
    env.execute_sql("CREATE TEMPORARY FUNCTION reading_time AS 'io.sensorwatch.flink.ReadingTime' LANGUAGE JAVA")
    return env


def test_jvm_parser_matches_shared_vectors(table_env):
    from pyflink.table import DataTypes

    lim = VECTORS["limits"]
    cases = VECTORS["cases"]
    rows = [(i, c["payload"], c["kafka_ts"]) for i, c in enumerate(cases)]
    t = table_env.from_elements(
        rows,
        DataTypes.ROW(
            [
                DataTypes.FIELD("i", DataTypes.INT()),
                DataTypes.FIELD("payload", DataTypes.STRING()),
                DataTypes.FIELD("kts", DataTypes.BIGINT()),
            ]
        ),
    )
    table_env.create_temporary_view("vectors", t)
    args = (
        f"payload, kts, CAST({lim['max_past_ms']} AS BIGINT), CAST({lim['max_future_ms']} AS BIGINT), "
        f"{lim['max_payload_bytes']}, CAST({lim['max_abs_value']} AS DOUBLE)"
    )
    result = table_env.execute_sql(
        f"SELECT i, r.device, r.tag, r.ts, r.val, r.reason, reading_time({args}) "
        f"FROM (SELECT i, kts, parse_reading({args}) AS r, payload FROM vectors)"
    )
    got = {row[0]: row for row in result.collect()}
    assert len(got) == len(cases)
    for i, case in enumerate(cases):
        _, device, tag, ts, val, reason, rowtime = got[i]
        if case["expect"] == "ok":
            assert reason is None, (case, reason)
            assert [device, tag, ts, val] == case["reading"]
            assert rowtime == ts
        else:
            assert reason is not None and reason.split(":")[0] == case["expect"], (case["payload"], reason)
            assert rowtime == case["kafka_ts"], "an invalid reading's event time must be its record time"
