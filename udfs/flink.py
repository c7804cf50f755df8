"""The PyFlink function around :class:`udfs.scoring.BatchScorer`.

One scorer, hence one gRPC channel, per Python worker: made in ``open()``, closed in
``close()`` (the PyFlink examples' rule). The function is a ``FlatMapFunction`` over the
``batches`` view: rows of (shard, batch_end, batch bytes), each holding every count window of a
shard that closed at one event time; it yields (kind, k, v) rows for the Kafka sinks.
"""

from __future__ import annotations

from pyflink.common import Row
from pyflink.datastream import FlatMapFunction, RuntimeContext

from udfs.batch import decode
from udfs.metrics import Metrics


class ScoreBatches(FlatMapFunction):
    """Score each batch of count windows; emit anomaly, score and no-model records."""

    def __init__(self, settings):
        # The Settings object travels pickled with the function (a JSON dump would mask secrets).
        self.settings = settings
        self.scorer = None

    def open(self, runtime_context: RuntimeContext) -> None:
        from udfs.scoring import BatchScorer

        group = runtime_context.get_metrics_group().add_group("sensorwatch")
        self.scorer = BatchScorer(self.settings, Metrics(group))
        self.batches = self.scorer.metrics.counter("batches")

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()

    def flat_map(self, value):
        self.batches.inc()
        for out in self.scorer.score(decode(value[2])):
            yield Row(out.kind, out.key, out.value)
