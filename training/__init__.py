"""Offline training: one anomaly model per sensor, exported as TF Serving SavedModels.

Needs the ``train`` extra (TensorFlow, scikit-learn, matplotlib, optuna):
``pip install 'sensorwatch[train]'``. The streaming job never imports this package.
"""

from __future__ import annotations


def require_train_extra() -> None:
    """Fail with the exact install command when the training extra is missing."""
    missing = []
    for mod in ("tensorflow", "keras", "sklearn", "matplotlib"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise ImportError(f"training needs {', '.join(missing)}: pip install 'sensorwatch[train]'")
