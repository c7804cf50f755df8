"""The PyFlink table function around :class:`sensorwatch.udfs.scoring.BatchScorer`.

Why a SQL table function rather than a DataStream ``flat_map``: the whole job is then one
statement set, one plan, so the planner shares one Kafka source and one tumbling aggregate
between the aggregates topic, the dead letters, the late topic and the scorer. (Crossing into
the DataStream API and back split the job into two plans that each read and parsed the
readings topic: half the throughput.)

One scorer, hence one gRPC channel, per Python worker: made in ``open()``, closed in
``close()`` (the PyFlink examples' rule). ``score_batch(batch)`` takes one ``batches`` row's
bytes (every count window of a shard that closed at one event time) and yields
``(kind, k, v, packed)`` rows: no-model and device-model records for the Kafka sinks, and one
``window_scores`` row whose ``packed`` bytes hold every scored window, compact, for the JVM
(the incident stage, and ``explode_records``, which builds a sensor model's records).
"""

from __future__ import annotations

from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, TableFunction, udtf

from sensorwatch.udfs.batch import decode
from sensorwatch.udfs.metrics import Metrics

#: Columns of what ``score_batch`` yields: which sink (anomaly, score, no_model), key, value;
#: and ``packed``, the batch's compact scores on the one ``window_scores`` row per batch.
OUTPUT_COLUMNS = ("kind", "k", "v", "packed")


class ScoreBatch(TableFunction):
    """Score each batch of count windows; yield its compact scores and the records made in Python."""

    def __init__(self, settings):
        # The Settings object travels pickled with the function (a JSON dump would mask secrets).
        self.settings = settings
        self.scorer = None
        self.batches = None

    def open(self, function_context: FunctionContext) -> None:
        from sensorwatch.udfs.scoring import BatchScorer

        group = function_context.get_metric_group().add_group("sensorwatch")
        self.scorer = BatchScorer(self.settings, Metrics(group))
        self.batches = self.scorer.metrics.counter("batches")

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()

    def eval(self, batch: bytes):
        self.batches.inc()
        for out in self.scorer.score(decode(batch)):
            yield out.kind, out.key, out.value, out.packed

    def is_deterministic(self) -> bool:
        # it calls a model server: the planner must neither fold nor duplicate the call
        return False


def score_batch_function(settings):
    """The registered form of :class:`ScoreBatch` for ``settings``."""
    return udtf(ScoreBatch(settings), result_types=[DataTypes.STRING()] * 3 + [DataTypes.BYTES()])
