"""sensorwatch: streaming anomaly detection for fleets of IoT sensors, one model per sensor.

Layers, each importing only those below it (import-linter holds it, see pyproject.toml):

* :mod:`sensorwatch.app`: command line, demo, local and standalone harness, evaluation;
* :mod:`sensorwatch.jobs` (the PyFlink job) and :mod:`sensorwatch.training` (offline training);
* :mod:`sensorwatch.udfs`: what the job's Python workers run;
* :mod:`sensorwatch.serving`: the TF-Serving-compatible model server, repository and client;
* :mod:`sensorwatch.stack` (the local Kafka broker) and :mod:`sensorwatch.simulate` (the fleet);
* :mod:`sensorwatch.core`: configuration, contracts, windows, Kafka options, outputs, retries.
"""

__version__ = "0.1.0"
