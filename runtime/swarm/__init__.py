"""The Swarm runtime: one Swarm service per pod, placed by Swarm's scheduler (docs/swarm.md)."""

from .runtime import SWARM_POD_CIDR, SwarmRuntime

__all__ = ["SWARM_POD_CIDR", "SwarmRuntime"]
