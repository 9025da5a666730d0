"""The simulated upstream: an OpenAI Chat Completions server with switches for failures.

Start it in-process with ``start_simulator(SimConfig(...))``, or build the app with
``create_app``; ``tokenrelay simulate-upstream`` serves it from the command line.
"""

from simulator.app import create_app
from simulator.cli import start_simulator
from simulator.config import SimConfig
from simulator.faults import FaultKind, FaultRule

__all__ = ["FaultKind", "FaultRule", "SimConfig", "create_app", "start_simulator"]
