#!/usr/bin/env python3
"""A soak (issue 20 item 3): ``python3 bench/soak.py [--minutes 30] [--seed N] [--runtime inprocess|docker]
[--mode host|sandbox] [--no-ingress] [--no-write]``. Not in CI.

One `gitship up` serves a Deployment of 3 kubia replicas (readiness probe) behind a ClusterIP Service and
an Ingress (gitship's HAProxy on a loopback port) while two load generators request without pause, one
through the Service, one through the Ingress. Meanwhile, every few seconds, one of:

- a valid commit (a new env value: a rolling update), an invalid commit (a bad field: rejected, then
  the file restored by another commit), `gitship rollout undo`;
- ``kill -9`` of one pod's process (in-process) or container (Docker);
- ``kill -9`` of the daemon, and its restart;
- on ``--runtime docker``: ``kill -9`` of the Docker engine, and its restart. The engine is the soak's
  own (bench/soak_docker.py), never the machine's; live restore is off, so the pods die with it.

Every failed request is recorded (time, path, error kind, the pod its client last reached) and
attributed (bench/soak_load.py): inside a daemon's or engine's down window, within 3 s of a pod's kill,
or unexplained; the table is printed. Afterwards (the daemon stopped cleanly): unexplained failures per
path, the daemon's RSS growth after the warm-up, its open fds, and what was left behind
(bench/soak_leaks.py: processes, containers, nftables rules, links and namespaces, mounts, loopback
addresses), and SQLite's integrity check of the store. With no ``--no-write`` the figures go into
bench/RESULTS.md, section "Soak" (bench/soak_report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import soak_leaks  # noqa: E402
from bench.common import Daemon, cluster_ip, commit, deployment, new_repo, proc_rss_kib, ready, service, wait  # noqa: E402
from bench.soak_load import Action, Load, attribute, summary, table  # noqa: E402

APP = "soak"
INGRESS = f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {APP}}}
spec:
  rules:
  - host: soak.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {APP}, port: {{number: 80}}}}}}}}
"""
WEIGHTS = {"valid": 4, "invalid": 3, "undo": 2, "kill-pod": 3, "kill-daemon": 1}
DOCKER_WEIGHTS = {**WEIGHTS, "kill-engine": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    """One soak's daemon, repository, engine (Docker) and record of actions."""

    def __init__(self, work: Path, seed: int, runtime: str, mode: str, ingress: bool):
        self.work, self.rnd, self.runtime, self.ingress = work, random.Random(seed), runtime, ingress
        self.engine: Any = None
        self.image = "kubia:v1"
        extra: list[str] = []
        if runtime == "docker":
            from bench.soak_docker import IMAGE, OwnDockerd

            self.engine = OwnDockerd().start()
            self.engine.build_images()
            self.image = IMAGE
            extra = ["--runtime", "docker", "--docker-host", self.engine.host]
            mode = "host"
        self.good = deployment(APP, 3, self.image, APP, probe=True)
        self.repo = new_repo(work, mode)
        files = {"web.yaml": self.good, "svc.yaml": service(APP, APP)}
        self.ingress_port = 0
        if ingress:
            self.ingress_port = _free_port()
            extra += ["--node-address", "127.0.0.1", "--ingress-http-port", str(self.ingress_port)]
            extra += ["--ingress-https-port", str(_free_port())]
            files["ing.yaml"] = INGRESS
        commit(self.repo, files, "soak: app")
        self.d = Daemon(self.repo, work / "state", extra=extra, mode=mode)
        self.actions: list[Action] = []
        self.counts: dict[str, int] = {}
        self.pod_uids: set[str] = set()
        self.pod_ips: dict[str, str] = {}  # every pod IP seen -> the pod's name (a failure's target)
        self.engine_outages: list[float] = []

    # ------------------------------------------------------------------ actions
    def act(self, n: int) -> None:
        weights = DOCKER_WEIGHTS if self.engine else WEIGHTS
        what = self.rnd.choices(list(weights), weights=list(weights.values()))[0]
        self.counts[what] = self.counts.get(what, 0) + 1
        t = time.monotonic()
        if what == "valid":
            commit(self.repo, {"web.yaml": self.good + f'        env: [{{name: ROUND, value: "{n}"}}]\n'}, f"round {n}")
            self.actions.append(Action(t, what, f"round {n}"))
        elif what == "invalid":
            self.actions.append(Action(t, what))
            sha, _ = commit(self.repo, {"bad.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: BAD}\n"}, "bad")
            self.d.wait_attempted(sha)
            commit(self.repo, {"bad.yaml": None}, "soak: remove the invalid file")
        elif what == "undo":
            self.actions.append(Action(t, what))
            subprocess.run(
                [sys.executable, "-m", "reconciler.cli", "rollout", "undo", "deployment", APP],
                env={**os.environ, "GITSHIP_STATE_DIR": self.d.state_dir},
                cwd=str(ROOT),
                capture_output=True,
                timeout=60,
            )
        elif what == "kill-pod":
            self._kill_pod(t)
        elif what == "kill-daemon":
            a = Action(t, what)
            self.actions.append(a)
            self.d.kill9()
            self.d.start()
            a.until = time.monotonic() + 2.0  # the proxy and HAProxy's new master answer once it is up
        else:
            self._kill_engine(t)

    def _kill_pod(self, t: float) -> None:
        victim = self._pod_victim()
        if victim is None:
            return
        name, kill = victim
        kill()
        self.actions.append(Action(t, "kill-pod", name))
        self.counts["pods-killed"] = self.counts.get("pods-killed", 0) + 1

    def _pod_victim(self) -> tuple[str, Any] | None:
        """(pod name, a function that kills its app process with SIGKILL), chosen at random."""
        if self.engine is not None:
            out = subprocess.run(
                ["docker", "-H", self.engine.host, "ps", "--filter", "label=gitship.container=app",
                 "--format", '{{.ID}} {{.Label "gitship.pod.name"}}'],
                capture_output=True, text=True, timeout=30,
            ).stdout.split("\n")  # fmt: skip
            rows = [ln.split() for ln in out if len(ln.split()) == 2]
            if not rows:
                return None
            cid, name = self.rnd.choice(rows)
            return name, lambda: subprocess.run(
                ["docker", "-H", self.engine.host, "kill", "-s", "KILL", cid], capture_output=True, timeout=30
            )
        pods = self._pod_pids()
        if not pods:
            return None
        pid, name = self.rnd.choice(pods)
        return name, lambda: os.kill(pid, 9)

    def _pod_pids(self) -> list[tuple[int, str]]:
        """(pid, pod name) of the pods' app processes (kubia.py, HOSTNAME in their environment)."""
        out = []
        for pid in soak_leaks.processes(str(self.repo), set()):
            p = int(pid.split()[0])
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if b"kubia.py" not in f.read():
                        continue
                with open(f"/proc/{p}/environ", "rb") as f:
                    env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
            except OSError:
                continue
            out.append((p, env.get(b"HOSTNAME", b"?").decode()))
        return out

    def _kill_engine(self, t: float) -> None:
        a = Action(t, "kill-engine")
        self.actions.append(a)
        self.engine.kill9()
        self.engine.restart()
        try:
            wait(lambda: self._ready() == 3, 120, "3 replicas ready after the engine's restart", 0.05)
        finally:
            self.engine_outages.append(time.monotonic() - t)
            a.until = time.monotonic() + 3.0  # the proxy's and HAProxy's endpoints follow within a pass
            a.detail = f"down {self.engine_outages[-1]:.1f} s"

    def _ready(self) -> int:
        pods = self.d.objects("Pod")
        self.pod_uids |= {p["metadata"]["uid"] for p in pods if p["metadata"].get("uid")}
        self.pod_ips.update(
            {p["status"]["podIP"]: p["metadata"]["name"] for p in pods if p.get("status", {}).get("podIP")}
        )
        return sum(1 for p in pods if ready(p) and not p["metadata"].get("deletionTimestamp"))

    # ------------------------------------------------------------------ the run
    def run(self, minutes: float) -> dict[str, Any]:
        d = self.d.start()
        loads: list[Load] = []
        try:
            wait(lambda: self._ready() == 3, 120, "3 replicas ready", 0.2)
            ip = wait(lambda: cluster_ip(d, APP), 60, "the ClusterIP", 0.05)
            loads.append(Load("service", ip, 80, nat=d.mode == "sandbox"))
            if self.ingress:
                loads.append(Load("ingress", "127.0.0.1", self.ingress_port, "soak.test"))
            for ld in loads:
                wait(lambda ld=ld: _answers(ld), 60, f"the {ld.path} answering", 0.1)  # type: ignore[misc]
                ld.start()
            time.sleep(10)  # warm-up
            t0 = time.monotonic()
            rss0, fds0 = proc_rss_kib(d.pid) / 1024, _fds(d.pid)
            end = t0 + minutes * 60
            n = 0
            while time.monotonic() < end:
                n += 1
                self.act(n)
                self._ready()
                time.sleep(self.rnd.uniform(2, 6))
            wait(lambda: self._ready() == 3, 120, "3 replicas ready at the end", 0.2)
            time.sleep(3)
            for ld in loads:
                ld.stop.set()
                ld.join(10)
            rss1, fds1 = proc_rss_kib(d.pid) / 1024, _fds(d.pid)
        finally:
            for ld in loads:
                ld.stop.set()
            d.stop()
        return self._result(minutes, loads, t0, (rss0, rss1), (fds0, fds1))

    def _result(
        self, minutes: float, loads: list[Load], t0: float, rss: tuple[float, float], fds: tuple[int, int]
    ) -> dict[str, Any]:
        rows = attribute([f for ld in loads for f in ld.failures], self.actions)
        print(table(rows, t0), flush=True)
        leaks = soak_leaks.all_leaks(self.d, str(self.work), self.pod_uids, self.engine)
        db = sqlite3.connect(os.path.join(self.d.state_dir, "gitship.db"))
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()
        return {
            "minutes": minutes,
            "runtime": self.runtime,
            "mode": self.d.mode,
            "paths": [ld.path for ld in loads],
            "actions": self.counts,
            "requests_ok": {ld.path: ld.ok for ld in loads},
            "failed": summary(rows, [ld.path for ld in loads]),
            "unexplained": [
                {
                    "t": round(r.failure.t - t0, 2),
                    "path": r.failure.path,
                    "kind": r.failure.kind,
                    "detail": r.failure.detail,
                    "last_pod": r.failure.last_pod,
                    "sent_to": self._pod_at(r.failure.target),
                    "nearest": f"{r.nearest.what} {r.nearest.detail}".strip() if r.nearest else "",
                    "last_kill": r.last_kill,
                    "since": round(r.since, 2),
                }
                for r in rows
                if r.cause == "unexplained"
            ],
            "engine_outages_s": [round(x, 1) for x in self.engine_outages],
            "rss_after_warmup_mb": round(rss[0], 1),
            "rss_end_mb": round(rss[1], 1),
            "rss_growth_pct": round((rss[1] - rss[0]) / rss[0] * 100, 1),
            "fds_after_warmup": fds[0],
            "fds_end": fds[1],
            "leaks": leaks,
            "store_integrity": integrity,
        }

    def _pod_at(self, target: str) -> str:
        ip = target.rsplit(":", 1)[0]
        return f"{target} ({self.pod_ips.get(ip, 'no pod seen there')})" if target else ""

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()


def _answers(ld: Load) -> bool:
    from bench.soak_load import request

    request(ld.host, ld.port, ld.vhost)
    return True


def soak(
    minutes: float,
    seed: int,
    work: Path,
    runtime: str = "inprocess",
    mode: str | None = None,
    ingress: bool | None = None,
) -> dict[str, Any]:
    """Run one soak in ``work``; the figures (see verdict)."""
    from bench.common import default_mode

    if ingress is None:
        ingress = shutil.which("haproxy") is not None
    s = Soak(work, seed, runtime, mode or default_mode(), ingress)
    try:
        r = s.run(minutes)
    finally:
        s.close()
    r["seed"] = seed
    return r


def verdict(r: dict[str, Any]) -> dict[str, bool]:
    out = {f"0 unexplained failed requests through the {p}": r["failed"][p]["unexplained"] == 0 for p in r["paths"]}
    out.update(
        {
            "memory growth after warm-up < 10%": r["rss_growth_pct"] < 10,
            "no leaked fd (end <= warm-up + 5)": r["fds_end"] <= r["fds_after_warmup"] + 5,
            **{f"no {k} left": not v for k, v in r["leaks"].items()},
            "store integrity ok": r["store_integrity"] == "ok",
        }
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--runtime", choices=["inprocess", "docker"], default="inprocess")
    ap.add_argument("--mode", choices=["host", "sandbox"], default=None, help="in-process pods (default: as up)")
    ap.add_argument("--no-ingress", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gitship-soak-") as tmp:
        r = soak(args.minutes, args.seed, Path(tmp), args.runtime, args.mode, False if args.no_ingress else None)
    print(json.dumps(r, indent=1))
    v = verdict(r)
    for k, ok in v.items():
        print(f"{'ok  ' if ok else 'FAIL'} {k}")
    if not args.no_write:
        from bench.soak_report import write_results

        write_results(r, v, "python3 bench/soak.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0 if all(v.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
