"""Every CLI command pays for what `import reconciler.cli` imports (tests poll `gitship get` hundreds of
times; users run it by hand). The servers' and the loader's libraries belong to the daemon and to the
commands that use them, imported inside those commands: aiohttp and prometheus-client cost ~0.4 s."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("aiohttp", "prometheus_client", "jinja2", "cryptography", "docker", "git", "uvloop", "watchdog", "dnslib")


def test_the_cli_imports_no_server_or_loader_library() -> None:
    code = "import sys, json, reconciler.cli; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert not [m for m in HEAVY if m in loaded], "import these inside the commands that need them"
