"""The in-process runtime: pods as local process groups on 127.x addresses (see supervisor.py)."""

from .supervisor import InProcessRuntime, crash_backoff, go_duration, pod_phase

__all__ = ["InProcessRuntime", "crash_backoff", "go_duration", "pod_phase"]
