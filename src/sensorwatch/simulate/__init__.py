"""The fleet simulator: ``sensorwatch simulate``."""

from sensorwatch.simulate.fleet import Fleet, Label
from sensorwatch.simulate.publish import MALFORMED, SimulationStats, simulate

__all__ = ["Fleet", "Label", "MALFORMED", "SimulationStats", "simulate"]
