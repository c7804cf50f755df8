"""Third-party noise, filtered at its source so the user sees sensorwatch's own output.

Each filter names what it hides and why it is noise. sensorwatch's own loggers, the user's
warnings and every error stay visible, and ``-v`` turns the Python-side filters off.
TensorFlow's native lines in training workers go to a log file instead (see
:func:`sensorwatch.training.trainer.train_fleet`), and the model server writes its own log.
"""

from __future__ import annotations

import logging
import os

#: Third-party loggers and the lowest level they print at without ``-v``, and why.
LOGGERS = {
    "kafka": logging.ERROR,  # kafka-python: INFO chatter, and WARNINGs while a client bootstraps and retries
    "apache_beam": logging.WARNING,  # PyFlink's Beam: INFO notices about optional GCP modules and typing
    "py4j": logging.WARNING,  # PyFlink's gateway to the JVM: INFO per connection
}


def quiet_third_parties(verbose: bool = False) -> None:
    """Set before anything imports TensorFlow, PyFlink or Kafka; child processes inherit it."""
    # TensorFlow's C++ INFO and WARNING lines (oneDNN notices, CPU feature lists) on import
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not verbose:
        for name, level in LOGGERS.items():
            logging.getLogger(name).setLevel(level)
