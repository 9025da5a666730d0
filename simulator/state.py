"""What one simulator instance remembers between requests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from simulator.config import SimConfig
from simulator.faults import FaultState
from simulator.requestlog import RequestLog


@dataclass
class SimState:
    """The configuration, the fault counts, the request log, and the shutdown signal."""

    config: SimConfig
    faults: FaultState
    log: RequestLog
    # Set when the server starts shutting down: paced and stalled responses end at once.
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def from_config(cls, config: SimConfig) -> SimState:
        """Fresh state for a server running ``config``."""
        return cls(
            config=config,
            faults=FaultState(config.fault, memory=config.log_limit),
            log=RequestLog(config.log_limit),
        )


STATE = web.AppKey("simulator_state", SimState)
