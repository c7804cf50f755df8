"""The job's SQL reads the one table of outputs: a sink and an insert per enabled kind."""

from __future__ import annotations

import re

import pytest

from sensorwatch.core.config import Settings
from sensorwatch.core.outputs import OUTPUTS, by_kind
from sensorwatch.jobs.sql import _interval, statements


@pytest.mark.parametrize("emit_scores,incidents", [(False, True), (True, True), (False, False)])
def test_one_sink_and_one_insert_per_enabled_output(emit_scores, incidents):
    s = Settings()
    s.job.emit_scores = emit_scores
    s.job.incidents.enabled = incidents
    sql = statements(s)
    enabled = [o for o in OUTPUTS if o.enabled(s)]
    assert ("score" in {o.kind for o in enabled}) == emit_scores
    sinks = {
        m for stmt in sql["ddl"] for m in re.findall(r"CREATE TEMPORARY TABLE (\w+)_out \(k STRING, v STRING\)", stmt)
    }
    assert sinks == {o.topic_field for o in enabled} | ({"incidents"} if incidents else set())
    # the incident stage reads the scorer's compact rows, through its own view
    stage = [i for i in sql["scored_inserts"] if i.startswith("INSERT INTO incidents_out")]
    views = {re.match(r"CREATE TEMPORARY VIEW (\w+) AS", v).group(1): v for v in sql["scored_views"]}
    assert len(stage) == incidents and set(views) == {"records"} | ({"window_scores"} if incidents else set())
    # a sensor model's records are built in the JVM from the compact row, every score or anomalies alone
    assert f"explode_records(batch, packed, {'TRUE' if emit_scores else 'FALSE'})" in views["records"]
    if incidents:
        assert f"'topic' = '{s.kafka.topics.incidents}'" in "\n".join(sql["ddl"])
        assert "TABLE window_scores PARTITION BY sensor" in stage[0] and "uid => 'incidents'" in stage[0]
    inserts = {re.search(r"WHERE kind = '(\w+)'", i).group(1): i for i in sql["scored_inserts"] if i not in stage}
    assert set(inserts) == {o.kind for o in enabled}
    for o in enabled:
        assert f"'topic' = '{o.topic(s.kafka.topics)}'" in "\n".join(sql["ddl"])
        assert inserts[o.kind].startswith(f"INSERT INTO {o.topic_field}_out SELECT k, v FROM records ")


def test_unknown_output_kind_is_refused_by_name():
    with pytest.raises(KeyError, match="no output kind 'alert'; known: anomaly, score, no_model"):
        by_kind("alert")


@pytest.mark.parametrize(
    "ms,literal",
    [
        (5000, "INTERVAL '0 00:00:05.000' DAY TO SECOND(3)"),
        (300_000, "INTERVAL '0 00:05:00.000' DAY TO SECOND(3)"),  # over SECOND(2)'s 99 s
        (90_061_001, "INTERVAL '1 01:01:01.001' DAY TO SECOND(3)"),
    ],
)
def test_intervals_of_any_length_are_valid_literals(ms, literal):
    assert _interval(ms) == literal


def test_the_device_path_is_there_only_for_selected_devices():
    from sensorwatch.jobs.sql import device_predicate

    plain = statements(Settings())["views"]
    assert "device_vectors" not in "\n".join(plain) and any("VIEW batches AS" in v for v in plain)
    s = Settings()
    s.serving.device_models = "pump-*, a_b?"
    views = "\n".join(statements(s)["views"])
    pred = device_predicate(s.serving.device_models)
    # LIKE patterns: * and ? become % and _, a literal _ is escaped
    assert pred == "(device LIKE 'pump-%' ESCAPE '\\' OR device LIKE 'a\\_b_' ESCAPE '\\')"
    assert f"FROM aggregates WHERE NOT {pred}" in views, "the selected devices leave the sensor path"
    assert f"FROM aggregates WHERE {pred}" in views, "and take the device path"
    for view in ("device_vectors", "device_windows", "device_batches", "sensor_batches"):
        assert f"CREATE TEMPORARY VIEW {view} AS" in views
    assert "UNION ALL" in views.split("CREATE TEMPORARY VIEW batches AS")[1]
    assert device_predicate(None) is None and device_predicate(" , ") is None
