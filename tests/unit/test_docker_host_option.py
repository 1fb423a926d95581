"""`gitship up --runtime docker --docker-host H` talks to H (found by the soak, bench/soak.py: the option
reached only the Swarm runtime, so the Docker runtime used DOCKER_HOST or the default socket)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.daemon import Daemon, Options


def test_docker_runtime_gets_the_docker_host(tmp_path: Path) -> None:
    pytest.importorskip("docker")
    opts = Options(source=str(tmp_path), state_dir=str(tmp_path / "state"), runtime="docker")
    opts.docker_host = "unix:///tmp/elsewhere/docker.sock"
    rt = Daemon(opts)._make_runtime()
    assert rt.docker_host == "unix:///tmp/elsewhere/docker.sock"  # type: ignore[attr-defined]
