"""Realistic simulated listening events with labelled incidents (``tunewatch simulate``, ``tunewatch run``)."""

from tunewatch.simulate.generator import DEFAULT_START, SimulationConfig, Simulator
from tunewatch.simulate.incidents import KINDS as INCIDENT_KINDS
from tunewatch.simulate.writers import write_stream

__all__ = ["DEFAULT_START", "INCIDENT_KINDS", "SimulationConfig", "Simulator", "write_stream"]
