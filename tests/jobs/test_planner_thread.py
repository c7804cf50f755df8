"""The job plans on whichever JVM thread py4j hands the call (FLINK-36298 in Flink 2.2.1).

py4j serves each pooled connection on its own JVM thread. While another Python thread holds
the connection that built the planner, the next call goes out on a fresh JVM thread, where
Calcite's thread-local metadata provider was never set: planning there failed the restart
test in CI. This reproduces that hand-over on purpose and plans the whole job across it.
"""

from __future__ import annotations

import threading
import time

import pytest

from sensorwatch.core.config import Settings

pytestmark = pytest.mark.integration


def test_the_whole_job_plans_on_a_jvm_thread_that_did_not_build_the_planner():
    from pyflink.java_gateway import get_gateway

    from sensorwatch.jobs.pipeline import _job

    jvm = get_gateway().jvm
    _, planner, block = _job(Settings())
    building = jvm.java.lang.Thread.currentThread().getId()
    held = threading.Event()

    def hold_the_connection() -> None:
        held.set()
        jvm.java.lang.Thread.sleep(3000)  # the connection (and its JVM thread) stays taken

    holder = threading.Thread(target=hold_the_connection)
    holder.start()
    held.wait(10)
    time.sleep(0.5)
    try:
        assert jvm.java.lang.Thread.currentThread().getId() != building, "the hand-over did not happen"
        with planner.execute_sql(f"EXPLAIN {block}").collect() as rows:
            plan = "\n".join(str(r[0]) for r in rows)
    finally:
        holder.join(10)
    assert "== Optimized Physical Plan ==" in plan and "anomalies_out" in plan
