"""bench/soak.py on the Docker runtime for about a minute: the soak's own dockerd (never the machine's:
other tests use it), killed with -9 and restarted among the other actions, under load through a Service
and an Ingress. Then no unexplained failed request (those while the engine was down, its containers dying
with it, are attributed to its kill), and nothing left: containers, processes, mounts, addresses.
Runs only with GITSHIP_SOAK=1, as root with dockerd installed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not os.environ.get("GITSHIP_SOAK"), reason="the short Docker soak runs with GITSHIP_SOAK=1 (about 1.5 minutes)"
)


def test_one_minute_docker_soak(tmp_path: Path) -> None:
    from bench import soak_docker
    from bench.soak import soak, verdict

    why = soak_docker.unavailable()
    if why:
        pytest.skip(why)
    r = soak(1.0, seed=21, work=tmp_path, runtime="docker")
    failed = [k for k, ok in verdict(r).items() if not ok]
    assert not failed, (failed, r)
    assert r["actions"].get("kill-engine", 0) >= 1 or r["minutes"] < 1, r["actions"]
