"""The job's SQL reads the one table of outputs: a sink and an insert per enabled kind."""

from __future__ import annotations

import re

import pytest

from sensorwatch.core.config import Settings
from sensorwatch.core.outputs import OUTPUTS, by_kind
from sensorwatch.jobs.sql import statements


@pytest.mark.parametrize("emit_scores", [False, True])
def test_one_sink_and_one_insert_per_enabled_output(emit_scores):
    s = Settings()
    s.job.emit_scores = emit_scores
    sql = statements(s)
    enabled = [o for o in OUTPUTS if o.enabled(s)]
    assert ("score" in {o.kind for o in enabled}) == emit_scores
    sinks = {
        m for stmt in sql["ddl"] for m in re.findall(r"CREATE TEMPORARY TABLE (\w+)_out \(k STRING, v STRING\)", stmt)
    }
    assert sinks == {o.topic_field for o in enabled}
    inserts = {re.search(r"WHERE kind = '(\w+)'", i).group(1): i for i in sql["scored_inserts"]}
    assert set(inserts) == {o.kind for o in enabled}
    for o in enabled:
        assert f"'topic' = '{o.topic(s.kafka.topics)}'" in "\n".join(sql["ddl"])
        assert inserts[o.kind].startswith(f"INSERT INTO {o.topic_field}_out ")


def test_unknown_output_kind_is_refused_by_name():
    with pytest.raises(KeyError, match="no output kind 'alert'; known: anomaly, score, no_model"):
        by_kind("alert")
