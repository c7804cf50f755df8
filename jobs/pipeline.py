"""Wires the job: the SQL of :mod:`jobs.sql` (JVM), the Python scorer, and the Kafka sinks.

The same function builds the job for the in-process Flink mini-cluster (``sensorwatch job``,
the demo, the tests) and for ``flink run -py jobs/anomaly_job.py`` on a cluster; only the
configuration differs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from sensorwatch.config import Settings
from sensorwatch.jars import fetch, flink_jars

from jobs.sql import statements

log = logging.getLogger("sensorwatch.job")

JOB_NAME = "sensorwatch"


def flink_configuration(s: Settings) -> dict[str, str]:
    """Flink options the job sets; everything else is Flink's default or the cluster's."""
    job = s.job
    conf = {
        "pipeline.name": JOB_NAME,
        "pipeline.jars": ";".join(j.resolve().as_uri() for j in flink_jars()),
        "parallelism.default": str(job.parallelism),
        "execution.checkpointing.interval": f"{job.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        # a model-server outage blocks the scorer and so the checkpoint barriers: a checkpoint
        # that times out must not fail the job, which is only waiting
        "execution.checkpointing.tolerable-failed-checkpoints": "1000",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "table.exec.source.idle-timeout": f"{job.idle_timeout_ms} ms",
        "python.fn-execution.bundle.time": str(job.python_bundle_ms),
        "python.fn-execution.bundle.size": "1000",
        "python.executable": job.python_executable or sys.executable,
        "python.client.executable": job.python_executable or sys.executable,
    }
    if job.checkpoint_dir:
        conf["execution.checkpointing.dir"] = Path(job.checkpoint_dir).resolve().as_uri()
    if job.restore_from:
        conf["execution.state-recovery.path"] = str(job.restore_from)
    return conf


def build(s: Settings, extra_conf: dict[str, str] | None = None):
    """A ``StreamExecutionEnvironment`` holding the whole job, ready to ``execute``."""
    from pyflink.common import Configuration, Types
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    from udfs.flink import ScoreBatches

    fetch()
    conf = Configuration()
    for k, v in {**flink_configuration(s), **(extra_conf or {})}.items():
        conf.set_string(k, v)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_python_executable(s.job.python_executable or sys.executable)
    t_env = StreamTableEnvironment.create(env)
    for k, v in {**flink_configuration(s), **(extra_conf or {})}.items():
        t_env.get_config().set(k, v)
    sql = statements(s)
    for stmt in sql["ddl"] + sql["views"]:
        t_env.execute_sql(stmt)
    batches = t_env.to_data_stream(t_env.from_path("batches"))
    scored = batches.flat_map(
        ScoreBatches(s),
        output_type=Types.ROW_NAMED(["kind", "k", "v"], [Types.STRING(), Types.STRING(), Types.STRING()]),
    ).name("score count windows (gRPC Predict)").uid("score")
    t_env.create_temporary_view("scored", t_env.from_data_stream(scored))
    ss = t_env.create_statement_set()
    for stmt in sql["inserts"] + sql["scored_inserts"]:
        ss.add_insert_sql(stmt)
    ss.attach_as_datastream()
    return env


def explain(s: Settings) -> str:
    """The optimised plan of the SQL part (``sensorwatch job --explain``)."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    fetch()
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    for k, v in flink_configuration(s).items():
        t_env.get_config().set(k, v)
    sql = statements(s)
    for stmt in sql["ddl"] + sql["views"]:
        t_env.execute_sql(stmt)
    ss = t_env.create_statement_set()
    for stmt in sql["inserts"]:
        ss.add_insert_sql(stmt)
    ss.add_insert_sql("INSERT INTO no_model_out SELECT CAST(shard AS STRING), CAST(batch_end AS STRING) FROM batches")
    return ss.explain()


def run(s: Settings, detached: bool = False):
    """Run the job; with ``detached`` return the ``JobClient`` at once."""
    env = build(s)
    if detached:
        return env.execute_async(JOB_NAME)
    return env.execute(JOB_NAME)
