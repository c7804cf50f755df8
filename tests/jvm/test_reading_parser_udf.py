"""The JVM half of the reading contract, run inside a real Flink mini-cluster.

The same shared vectors as tests/sensorwatch/test_contracts.py: the job's JVM parser and
the Python mirror must give the same verdict and reason code for every case.
"""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "readings.json").read_text())
DEVICE_VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "device_messages.json").read_text())


@pytest.fixture(scope="module")
def table_env():
    from sensorwatch.jobs.pipeline import function_env

    return function_env("parse_reading", "reading_time", "parse_device_message", "message_time")


def _vectors_view(table_env, name: str, vectors: dict) -> str:
    """The cases as the view ``name`` (i, payload, kts); the parsers' arguments over it."""
    from pyflink.table import DataTypes

    lim = vectors["limits"]
    fields = [("i", DataTypes.INT()), ("payload", DataTypes.STRING()), ("kts", DataTypes.BIGINT())]
    rows = [(i, c["payload"], c["kafka_ts"]) for i, c in enumerate(vectors["cases"])]
    table_env.create_temporary_view(
        name, table_env.from_elements(rows, DataTypes.ROW([DataTypes.FIELD(n, t) for n, t in fields]))
    )
    return (
        f"payload, kts, CAST({lim['max_past_ms']} AS BIGINT), CAST({lim['max_future_ms']} AS BIGINT), "
        f"{lim['max_payload_bytes']}, CAST({lim['max_abs_value']} AS DOUBLE)"
    )


def test_jvm_parser_matches_shared_vectors(table_env):
    cases = VECTORS["cases"]
    args = _vectors_view(table_env, "vectors", VECTORS)
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


def test_jvm_device_message_parser_matches_shared_vectors(table_env):
    """One row per value (its place in ``part``), a value rejected alone among kept ones, one
    row without a part for a message rejected whole; the watermark's time as for readings."""

    cases = DEVICE_VECTORS["cases"]
    args = _vectors_view(table_env, "device_vectors", DEVICE_VECTORS)
    result = table_env.execute_sql(
        f"SELECT i, r.device, r.tag, r.ts, r.val, r.reason, r.part, message_time({args}) "
        f"FROM device_vectors, LATERAL TABLE(parse_device_message({args})) AS T(r)"
    )
    rows: dict[int, list] = {}
    for row in result.collect():
        rows.setdefault(row[0], []).append(tuple(row)[1:])
    assert sorted(rows) == list(range(len(cases)))
    for i, case in enumerate(cases):
        got = sorted(rows[i], key=lambda r: -1 if r[5] is None else r[5])
        if case["expect"] != "ok":
            assert len(got) == 1, (case, got)
            _, tag, ts, val, reason, part, rowtime = got[0]
            assert reason.split(":")[0] == case["expect"] and part is None and tag is None, (case["payload"], got)
            assert rowtime == case["kafka_ts"], "a rejected message's event time must be its record time"
            continue
        kept = [[d, tag, ts, val] for d, tag, ts, val, reason, _part, _rt in got if reason is None]
        rejected = [[tag, reason.split(":")[0]] for _d, tag, _ts, _val, reason, _part, _rt in got if reason]
        assert kept == case["readings"], case
        assert rejected == case["rejected"], case
        assert [r[5] for r in got] == list(range(len(got))), "every value has its place in the message"
        assert {r[6] for r in got} == {case["readings"][0][2]}, "a message's values share its time"
