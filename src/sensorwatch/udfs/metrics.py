"""The metrics the scorer reports, behind the two calls PyFlink's ``MetricGroup`` offers.

In the job, :class:`Metrics` wraps the operator's Flink metric group (``sensorwatch`` subgroup),
so counters and the latency distribution show in Flink's REST API and reporters. Without a
group (unit tests, the CLI) it keeps the values in memory, readable through :meth:`values`.
"""

from __future__ import annotations

from typing import Any


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n

    def get_count(self) -> int:
        return self.count


class _Distribution:
    def __init__(self) -> None:
        self.values: list[int] = []

    def update(self, value: int) -> None:
        self.values.append(value)


class Metrics:
    """``counter(name).inc(n)`` and ``distribution(name).update(v)``, cached by name."""

    def __init__(self, group: Any = None):
        self.group = group
        self._metrics: dict[tuple[str, str], Any] = {}

    def counter(self, name: str):
        key = ("counter", name)
        if key not in self._metrics:
            self._metrics[key] = self.group.counter(name) if self.group is not None else _Counter()
        return self._metrics[key]

    def distribution(self, name: str):
        key = ("distribution", name)
        if key not in self._metrics:
            self._metrics[key] = self.group.distribution(name) if self.group is not None else _Distribution()
        return self._metrics[key]

    def values(self) -> dict[str, Any]:
        """In-memory values (only without a Flink group): counts, and lists for distributions."""
        out: dict[str, Any] = {}
        for (_kind, name), m in self._metrics.items():
            if isinstance(m, _Counter):
                out[name] = m.count
            elif isinstance(m, _Distribution):
                out[name] = list(m.values)
        return out
