"""The one retry policy: bounds, jitter, and when it gives up."""

from __future__ import annotations

from sensorwatch.core.config import ServingConfig
from sensorwatch.core.retry import RetryPolicy


def test_delays_double_up_to_the_cap_with_jitter():
    p = RetryPolicy(initial_s=0.1, max_s=1.0)
    for attempt, base in ((0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (50, 1.0)):
        delays = [p.delay(attempt) for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > 0.1 * base  # jittered, so clients do not retry in step


def test_forever_unless_bounded():
    assert all(RetryPolicy(0.1, 1.0).retries_left(a) for a in (0, 10, 10**6))
    bounded = RetryPolicy(0.1, 1.0, attempts=2)
    assert [bounded.retries_left(a) for a in range(4)] == [True, True, False, False]
    assert not RetryPolicy(0.1, 1.0, attempts=0).retries_left(0)


def test_the_serving_sections_bounds_reach_the_channel():
    sv = ServingConfig(backoff_initial_s=0.25, backoff_max_s=3.0)
    p = RetryPolicy.of(sv)
    assert (p.initial_s, p.max_s, p.attempts) == (0.25, 3.0, None)
    assert dict(p.reconnect_options()) == {
        "grpc.initial_reconnect_backoff_ms": 250,
        "grpc.max_reconnect_backoff_ms": 3000,
    }
