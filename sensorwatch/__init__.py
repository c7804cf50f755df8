"""sensorwatch: streaming anomaly detection for fleets of IoT sensors, one model per sensor.

The package holds what every part shares (configuration, message contracts, the local
stack, the fleet simulator, the command line). The Flink job lives in ``jobs/``, the
functions its Python workers run in ``udfs/``, the model server in ``serving/`` and the
offline trainer in ``training/``.
"""

__version__ = "0.1.0"
