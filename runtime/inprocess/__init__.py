"""The in-process runtime: pods as local process groups on 127.x addresses (see supervisor.py)."""

from .supervisor import InProcessRuntime

__all__ = ["InProcessRuntime"]
