#!/usr/bin/env python3
"""Where an idle daemon's CPU goes: ``python3 bench/profile_idle.py [--pods 1000] [--seconds 20]``.

Runs `gitship up` (in-process runtime, host isolation, ``busybox sleep`` pods) under cProfile (the
event loop's thread), waits until every pod is Ready, then profiles ``--seconds`` of idleness (SIGUSR1
starts, SIGUSR2 dumps) and prints the functions with the most cumulative and own time. py-spy is not
on this machine; this is the in-process equivalent.
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Daemon, commit, new_repo, ready, wait  # noqa: E402
from bench.scale import DEPLOYMENT  # noqa: E402

WRAPPER = """
import cProfile, runpy, signal, sys
prof = cProfile.Profile()
def start(*_):
    prof.enable()
def dump(*_):
    prof.disable()
    prof.dump_stats(OUT)
OUT = sys.argv.pop(1)
signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, dump)
sys.argv = ["gitship", *sys.argv[1:]]
runpy.run_module("reconciler.cli", run_name="__main__")
"""


class ProfiledDaemon(Daemon):
    out = ""

    def _start(self, wait_applied: bool) -> Daemon:
        os.makedirs(os.path.dirname(self.state_dir), exist_ok=True)
        self.logf = open(self.state_dir + ".out", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, self.out, "up", self.repo, "--state-dir", self.state_dir, *self.args],
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait(lambda: self.proc.poll() is not None or self.first_pass_done(), 90, "gitship up to start", 0.05)
        if wait_applied:
            wait(lambda: self.meta("lastAttemptedRevision"), 60, "the first revision", 0.05)
        return self


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitship-prof-") as tmp:
        repo = new_repo(Path(tmp), "host")
        commit(repo, {"idle.yaml": DEPLOYMENT.format(n=args.pods)}, "pods")
        d = ProfiledDaemon(repo, Path(tmp) / "state", mode="host")
        d.out = str(Path(tmp) / "idle.prof")
        d.start()
        try:
            n = args.pods
            wait(lambda: sum(1 for p in d.objects("Pod") if ready(p)) >= n, 120 + n, "pods ready", 0.5)
            time.sleep(5)
            os.kill(d.pid, signal.SIGUSR1)
            time.sleep(args.seconds)
            os.kill(d.pid, signal.SIGUSR2)
            wait(lambda: os.path.exists(d.out), 30, "the profile", 0.1)
            time.sleep(1)
            st = pstats.Stats(d.out)
            st.sort_stats("cumulative").print_stats(args.top)
            st.sort_stats("tottime").print_stats(args.top)
        finally:
            d.stop()


if __name__ == "__main__":
    main()
