"""The PyFlink streaming job: its SQL (:mod:`.sql`, the JVM half), its wiring (:mod:`.pipeline`),
the ``flink run -py`` entry point (:mod:`.anomaly_job`) and its REST metrics (:mod:`.metrics`).

The functions the job's Python workers run live in :mod:`sensorwatch.udfs`.
"""
