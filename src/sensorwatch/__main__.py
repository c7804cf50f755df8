"""``python -m sensorwatch``: the command line (:mod:`sensorwatch.app.cli`)."""

import sys

from sensorwatch.app.cli import main

sys.exit(main())
