"""Wires the job: the SQL of :mod:`sensorwatch.jobs.sql` (JVM), the Python scorer, and the Kafka sinks.

The same function builds the job for the in-process Flink mini-cluster (``sensorwatch job``,
the demo, the tests) and for ``flink run -py jobs/anomaly_job.py`` on a cluster; only the
configuration differs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from sensorwatch.core.config import Settings
from sensorwatch.core.jars import fetch, flink_jars
from sensorwatch.jobs.sql import statements

log = logging.getLogger("sensorwatch.job")

JOB_NAME = "sensorwatch"


def flink_configuration(s: Settings) -> dict[str, str]:
    """Flink options the job sets; everything else is Flink's default or the cluster's."""
    job = s.job
    conf = {
        "pipeline.name": JOB_NAME,
        "pipeline.jars": ";".join(j.resolve().as_uri() for j in flink_jars()),
        "parallelism.default": str(job.parallelism),
        # chained SQL operators hand rows on without a defensive copy (8 % of the JVM's CPU);
        # neither the planner's operators nor sensorwatch's UDFs keep a row past the call
        "pipeline.object-reuse": "true",
        "execution.checkpointing.interval": f"{job.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        # a model-server outage blocks the scorer and so the checkpoint barriers: a checkpoint
        # that times out must not fail the job, which is only waiting
        "execution.checkpointing.tolerable-failed-checkpoints": "1000",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "table.exec.source.idle-timeout": f"{job.idle_timeout_ms} ms",
        # the Kafka connector's admin-client thread may still log while a cancelled job's
        # classloader closes; Flink's leak check then prints a stack trace for nothing lost
        "classloader.check-leaked-classloader": "false",
        # a light stream's windows wait in partly filled buffers up to this at each exchange
        "execution.buffer-timeout.interval": f"{job.buffer_timeout_ms} ms",
        "python.fn-execution.bundle.time": str(job.python_bundle_ms),
        "python.fn-execution.bundle.size": "1000",
        "python.executable": job.python_executable or sys.executable,
        "python.client.executable": job.python_executable or sys.executable,
    }
    if job.metrics_port is not None:
        conf.update(prometheus_reporter(job.metrics_port))
    if job.checkpoint_dir:
        conf["execution.checkpointing.dir"] = Path(job.checkpoint_dir).resolve().as_uri()
    if job.restore_from:
        conf["execution.state-recovery.path"] = str(job.restore_from)
    return conf


def prometheus_reporter(port: str) -> dict[str, str]:
    """Flink settings for its own Prometheus reporter (from the distribution's plugins folder:
    PyFlink's, or the official image's) on ``port``, a port or a range (``9250-9260``: each
    JobManager and TaskManager on a host takes the next free one). The mini-cluster, the
    standalone cluster and docker-compose's ``FLINK_PROPERTIES`` say the same."""
    return {
        "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        "metrics.reporter.prom.port": str(port),
    }


def reporter_on_gateway_classpath() -> None:
    """Put Flink's Prometheus reporter on the classpath of the JVM PyFlink starts for the
    mini-cluster, before it starts (a JVM's classpath is fixed at launch).

    The mini-cluster looks its metric reporters up on its classpath only: not in the
    distribution's plugins folder, nor in ``pipeline.jars``. The jar is the one PyFlink's wheel
    ships in ``plugins/metrics-prometheus``, which is Flink's own at the same version. The
    gateway launcher appends ``HADOOP_CLASSPATH`` to its classpath, the hook Flink's own
    scripts give for extra jars. Present, the reporter does nothing unless configured
    (``job.metrics_port``).
    """
    import pyflink

    plugin = sorted((Path(pyflink.__file__).parent / "plugins" / "metrics-prometheus").glob("*.jar"))
    have = os.environ.get("HADOOP_CLASSPATH", "")
    if plugin and str(plugin[-1]) not in have.split(os.pathsep):
        os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(p for p in (have, str(plugin[-1])) if p)


def _table_env(s: Settings, extra_conf: dict[str, str] | None = None):
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    fetch()
    reporter_on_gateway_classpath()
    conf = Configuration()
    for k, v in {**flink_configuration(s), **(extra_conf or {})}.items():
        conf.set_string(k, v)
    return TableEnvironment.create(
        EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf).build()
    )


def function_env(*names: str):
    """A batch TableEnvironment with the job's jars and the named Java functions of
    :data:`~sensorwatch.jobs.sql.FUNCTIONS` registered: for running them on their own, over
    rows given in Python (the JVM contract tests, ``bench/scorer.py``)."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    from sensorwatch.jobs.sql import FUNCTIONS

    fetch()
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("pipeline.jars", ";".join(j.resolve().as_uri() for j in flink_jars()))
    env.get_config().set("parallelism.default", "1")
    for n in names:
        env.execute_sql(f"CREATE TEMPORARY FUNCTION {n} AS '{FUNCTIONS[n]}' LANGUAGE JAVA")
    return env


class _PlannerThread:
    """Plans on whichever JVM thread py4j gives the call (FLINK-36298, fixed after Flink 2.2.1).

    Calcite keeps the planner's metadata provider in a thread-local
    (``RelMetadataQueryBase.THREAD_PROVIDERS``) that Flink sets only on the thread that builds
    the planner. py4j serves each connection of its pool on its own JVM thread, and a client
    with more than one Python thread on the gateway (a stopper, a finaliser) can be handed
    another connection later, so planning there fails with ``NullPointerException:
    metadataHandlerProvider``. This keeps the provider read on the building thread and sets it
    on the current one before each planning call; a call that still lands on an unset thread
    (another thread took the connection in between) is retried, logged.
    """

    ATTEMPTS = 3

    def __init__(self, t_env):
        from pyflink.java_gateway import get_gateway

        loader = t_env._j_tenv.getPlanner().getClass().getClassLoader()
        base = get_gateway().jvm.java.lang.Class.forName(
            "org.apache.calcite.rel.metadata.RelMetadataQueryBase", True, loader
        )
        self._local = base.getField("THREAD_PROVIDERS").get(None)
        self._providers = self._local.get()
        self._t_env = t_env

    def execute_sql(self, statement: str):
        from py4j.protocol import Py4JJavaError

        for attempt in range(1, self.ATTEMPTS + 1):
            if self._providers is not None:
                self._local.set(self._providers)
            try:
                return self._t_env.execute_sql(statement)
            except Py4JJavaError as e:
                if "metadataHandlerProvider" not in str(e.java_exception) or attempt == self.ATTEMPTS:
                    raise
                log.warning(
                    "planning met FLINK-36298 on a fresh py4j thread (attempt %d of %d); planning again",
                    attempt,
                    self.ATTEMPTS,
                )
        raise AssertionError("unreachable")


def _create_view(t_env, statement: str) -> None:
    """``CREATE TEMPORARY VIEW name AS query`` as a view of the query's planned table.

    Why not the SQL statement: a SQL view is converted anew wherever it is read, and a view
    over a table function (``LATERAL TABLE(parse_device_message(...))``) then gets a new
    correlation variable each time, so the planner sees different sub-plans and reuses none:
    every sink got its own copy of the whole job after the parse, the scorer included
    (measured: a fleet's windows scored three times). A view of a planned table is one tree,
    shared by every reader.
    """
    head, _, query = statement.partition(" AS\n")
    name = head.removeprefix("CREATE TEMPORARY VIEW ").strip()
    if not name.isidentifier() or not query:
        raise ValueError(f"not a CREATE TEMPORARY VIEW <name> AS <query> statement: {statement[:80]!r}")
    t_env.create_temporary_view(name, t_env.sql_query(query))


def _job(s: Settings, extra_conf: dict[str, str] | None = None):
    """The planner and the whole job as one ``STATEMENT SET`` block, one plan.

    The scorer is the Python table function ``score_batch`` over the view ``batches``, so the
    planner sees every sink at once and reads the readings topic once. The block is planned by
    one SQL call (``EXECUTE``/``EXPLAIN STATEMENT SET``) through :class:`_PlannerThread`.
    """
    from sensorwatch.udfs.flink import OUTPUT_COLUMNS, score_batch_function

    t_env = _table_env(s, extra_conf)
    planner = _PlannerThread(t_env)
    t_env.create_temporary_function("score_batch", score_batch_function(s))
    sql = statements(s)
    for stmt in sql["ddl"]:
        t_env.execute_sql(stmt)
    for stmt in sql["views"]:
        _create_view(t_env, stmt)
    cols = ", ".join(OUTPUT_COLUMNS)
    t_env.execute_sql(f"""CREATE TEMPORARY VIEW scored AS
SELECT {cols}, batch FROM batches, LATERAL TABLE(score_batch(batch)) AS T({cols})""")
    for stmt in sql["scored_views"]:
        _create_view(t_env, stmt)  # one explode_records and one unpack_scores for every sink
    inserts = "".join(f"{stmt.strip().rstrip(';')};\n" for stmt in sql["inserts"] + sql["scored_inserts"])
    return t_env, planner, f"STATEMENT SET\nBEGIN\n{inserts}END"


def explain(s: Settings) -> str:
    """The optimised plan of the whole job (``sensorwatch job --explain``)."""
    _, planner, block = _job(s)
    with planner.execute_sql(f"EXPLAIN {block}").collect() as rows:
        return "\n".join(str(row[0]) for row in rows)


#: Beam's thread in the loopback Python worker that reads the JVM's data stream
_WORKER_READER = "read_grpc_client_inputs"


def worker_hangup_hook(previous=None):
    """A ``threading.excepthook`` that logs, instead of printing as a crash, the end of the
    loopback Python worker's data stream when its job ends.

    With the mini-cluster the Python worker runs in the submitting process (PyFlink's loopback
    mode). When the job is cancelled or finishes, the JVM hangs up that stream (CANCELLED,
    "Multiplexer hanging up") and Beam's reader thread dies on it with a traceback on stderr,
    after every job, that reads as a failure and loses nothing. That one case is logged at
    INFO; any other exception, in any thread, goes on to ``previous`` (the default hook)."""
    import threading

    import grpc

    previous = previous or threading.excepthook

    def hook(args) -> None:
        exc = args.exc_value
        if (
            args.thread is not None
            and args.thread.name == _WORKER_READER
            and isinstance(exc, grpc.RpcError)
            and exc.code() == grpc.StatusCode.CANCELLED
        ):
            log.info("the job's Python worker stream was closed by the JVM (%s): the job ended", exc.details())
            return
        previous(args)

    return hook


_hook_installed = False


def _quiet_worker_hangup() -> None:
    """Install :func:`worker_hangup_hook` once per process, over whatever hook is there."""
    import threading

    global _hook_installed
    if not _hook_installed:
        threading.excepthook = worker_hangup_hook(threading.excepthook)
        _hook_installed = True


def run(s: Settings, detached: bool = False, extra_conf: dict[str, str] | None = None):
    """Run the job; with ``detached`` return its ``JobClient`` at once, else wait for it to end.
    ``extra_conf``: Flink options on top of :func:`flink_configuration` (e.g. ``rest.port``)."""
    _quiet_worker_hangup()
    t_env, planner, block = _job(s, extra_conf)
    result = planner.execute_sql(f"EXECUTE {block}")
    # `flink run -d` submits detached (execution.attached=false): the client must not wait
    attached = t_env.get_config().get("execution.attached", "true").strip().lower() != "false"
    if detached or not attached:
        return result.get_job_client()
    return result.wait()


def stop_with_savepoint(job, directory: str, drain: bool = False) -> str:
    """Stop ``job`` (the ``JobClient`` :func:`run` returns) with a savepoint in ``directory``
    (a path or URI) and return the savepoint's path, for ``job.restore_from``.

    PyFlink 2.2's ``JobClient.stop_with_savepoint`` calls a Java overload Flink 2 removed (the
    one without a savepoint format), so this calls the current one. ``drain`` advances event
    time to the end first (fires every window): for a job that is to end, not to resume.
    """
    from pyflink.java_gateway import get_gateway

    fmt = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.DEFAULT
    return str(job._j_job_client.stopWithSavepoint(drain, str(directory), fmt).get())
