"""Offline training: one anomaly model per sensor, exported as TF Serving SavedModels.

Needs the ``train`` extra (TensorFlow, scikit-learn, matplotlib, optuna, pandas, pyarrow):
``pip install 'sensorwatch[train]'``; :func:`sensorwatch.core.optional.check` says so by name
when it is missing. The streaming job never imports this package.
"""
