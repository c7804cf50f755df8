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


@pytest.mark.integration
@pytest.mark.parametrize(
    "layout,parallelism,shards,want",
    [
        ("packed", 1, None, 2),
        ("packed", 2, None, 4),
        ("packed", 1, 3, 3),
        ("packed", 1, 20, 8),
        ("per-sensor", 1, 5, 5),
    ],
)
def test_scoring_batches_keep_each_model_whole(layout, parallelism, shards, want):
    """``job.batch_shards`` folds the windows of one event time onto fewer, larger batches (twice
    the parallelism, unset). In the packed layout a model's windows must still share one batch
    (one Predict per model): Flink's ``shard_of`` and the trainer's ``model_name`` agree, run here."""
    from sensorwatch.core.windows import model_name
    from sensorwatch.jobs.pipeline import function_env
    from sensorwatch.jobs.sql import batch_shard

    s = Settings()
    s.serving.layout, s.job.parallelism, s.job.batch_shards = layout, parallelism, shards
    sensors = [f"dev-{i:04d}/{tag}" for i in range(120) for tag in ("temperature", "pressure", "vibration")]
    env = function_env("shard_of")
    values = ", ".join(f"('{x}')" for x in sensors)
    query = f"SELECT sensor, {batch_shard(s, 'sensor')} FROM (VALUES {values}) AS t(sensor)"
    with env.execute_sql(query).collect() as rows:
        batch = {r[0]: r[1] for r in rows}
    assert set(batch) == set(sensors) and set(batch.values()) == set(range(want))
    models: dict[str, set[int]] = {}
    for sensor, b in batch.items():
        models.setdefault(model_name(sensor, layout, s.serving.packed_groups), set()).add(b)
    assert all(len(b) == 1 for b in models.values()), "a model's windows split over batches"
