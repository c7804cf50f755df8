"""The table of what the scorer emits: each output kind, the topic it goes to, and when.

The job's SQL builds one Kafka sink per row and one ``INSERT ... WHERE kind = ...`` per row;
the scorer tags every record with a row's ``kind``; the command line offers the topics. A new
output kind is a row here and a topic in :class:`~sensorwatch.core.config.TopicsConfig`.

>>> [o.kind for o in OUTPUTS]
['anomaly', 'score', 'no_model']
>>> by_kind("anomaly").topic_field
'anomalies'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sensorwatch.core.config import Settings, TopicsConfig


@dataclass(frozen=True)
class OutputKind:
    """One kind of scorer record."""

    kind: str
    """the value of the ``kind`` column the scorer yields"""
    topic_field: str
    """the :class:`TopicsConfig` field naming its topic; also the sink table's name stem"""
    enabled: Callable[[Settings], bool] = lambda _s: True
    """whether the job publishes it under these settings"""

    def topic(self, topics: TopicsConfig) -> str:
        return getattr(topics, self.topic_field)


ANOMALY = OutputKind("anomaly", "anomalies")
"""a scored window over its threshold"""
SCORE = OutputKind("score", "scores", lambda s: s.job.emit_scores)
"""every other scored window, with ``job.emit_scores``"""
NO_MODEL = OutputKind("no_model", "no_model")
"""a window nobody could score: no model for its sensor (status ``no_model``) or a refusal (``error``)"""

OUTPUTS: tuple[OutputKind, ...] = (ANOMALY, SCORE, NO_MODEL)

#: The kind of the scorer's one row per batch that carries every scored window, compact, to the
#: incident stage (``unpack_scores`` then ``track_incidents`` in the JVM, to the incidents topic).
WINDOW_SCORES = "window_scores"


def by_kind(kind: str) -> OutputKind:
    for o in OUTPUTS:
        if o.kind == kind:
            return o
    raise KeyError(f"no output kind {kind!r}; known: {', '.join(o.kind for o in OUTPUTS)}")
