"""A fake Aloudata CAN server driven by scenario files, for demos and integration tests.

``scenario`` reads a scenario file; ``reply`` computes each reply from it without I/O;
``server`` serves them over aiohttp; ``cli`` is ``python -m exporter.simulator``.

May import: can (the API's path), config (its loaders) and the foundation. A program of its
own: the daemon imports it only for ``--demo``, and it imports nothing of the daemon.
"""

from exporter.can.models import LATEST_TIME_PATH
from exporter.simulator.reply import SimulatedReply, compute_reply
from exporter.simulator.scenario import DEMO_SCENARIO_PATH, Scenario, ScenarioError, load_scenario
from exporter.simulator.server import (
    HEALTH_PATH,
    STATS_PATH,
    RunningSimulator,
    create_app,
    start_simulator,
)

__all__ = [
    "DEMO_SCENARIO_PATH",
    "HEALTH_PATH",
    "LATEST_TIME_PATH",
    "STATS_PATH",
    "RunningSimulator",
    "Scenario",
    "ScenarioError",
    "SimulatedReply",
    "compute_reply",
    "create_app",
    "load_scenario",
    "start_simulator",
]
