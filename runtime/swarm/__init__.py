"""The Swarm runtime: one Swarm service per pod, placed by Swarm's scheduler (docs/swarm.md)."""

from .engine import SWARM_POD_CIDR
from .runtime import SwarmRuntime

__all__ = ["SWARM_POD_CIDR", "SwarmRuntime"]
