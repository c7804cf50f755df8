"""The one retry policy: capped exponential backoff with jitter, for ever or a bounded number of times.

Every caller that retries (the job's scorer, the command line's client, the gRPC channel's own
reconnects) takes its delays from a :class:`RetryPolicy`, so "how long until we try again" is
answered in one place. The job retries *for ever* (``attempts=None``): a model server that is
down delays scoring, it never loses a window. Interactive tools give up after a few attempts.

>>> p = RetryPolicy(initial_s=0.1, max_s=5.0, attempts=3)
>>> [p.retries_left(a) for a in range(4)]
[True, True, True, False]
>>> all(0.05 <= p.delay(0) <= 0.1 for _ in range(100))
True
>>> p.delay(20) <= 5.0
True
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Delays ``min(max_s, initial_s * 2**attempt)``, each scaled by a jitter in [0.5, 1].

    ``attempts`` is how many retries follow the first try; ``None`` retries for ever.
    """

    initial_s: float
    max_s: float
    attempts: int | None = None

    @classmethod
    def of(cls, serving, attempts: int | None = None) -> RetryPolicy:
        """The policy of a :class:`~sensorwatch.core.config.ServingConfig`'s backoff bounds."""
        return cls(serving.backoff_initial_s, serving.backoff_max_s, attempts)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0 = the first retry)."""
        base = min(self.max_s, self.initial_s * 2 ** min(attempt, 30))
        return base * random.uniform(0.5, 1.0)

    def retries_left(self, attempt: int) -> bool:
        """Whether a call that failed on retry number ``attempt`` (0 = the first try) may go again."""
        return self.attempts is None or attempt < self.attempts

    def reconnect_options(self) -> list[tuple[str, int]]:
        """gRPC channel options that bound the channel's own reconnect backoff by this policy.

        gRPC's default reconnect backoff grows to 120 s: after a 30 s outage the channel could
        sit out its next attempt for tens of seconds with the server already back, every call
        failing UNAVAILABLE meanwhile. Bounded here, calls resume within ``max_s`` of the
        server's return.
        """
        return [
            ("grpc.initial_reconnect_backoff_ms", max(1, int(self.initial_s * 1000))),
            ("grpc.max_reconnect_backoff_ms", max(1, int(self.max_s * 1000))),
        ]


def wait_until(done: Callable[[], bool], timeout_s: float, every_s: float = 0.05) -> bool:
    """Poll ``done()`` until it holds or ``timeout_s`` passed; whether it held (for a state
    another thread or process reaches: a server started, a consumer caught up).

    >>> wait_until(lambda: True, 0.1), wait_until(lambda: False, 0.1, every_s=0.02)
    (True, False)
    """
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True
