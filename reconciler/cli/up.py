"""`gitship init DIR`, `gitship up REPO` and `gitship status`: a repository, the daemon, and its state."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from reconciler.cli.common import Subparsers, die, open_store, socket_path, state_dir
from reconciler.cli.endpoints import META_KEYS, endpoint_lines, endpoint_status
from reconciler.kindnames import without_effect_line, without_effect_summary
from reconciler.cli.ingress import add_ingress_options, ingress_lines
from reconciler.ops.upflags import add_ops_options, add_up_flags, ops_options
from reconciler.cli.plan import add_prune_options, prune_status_lines
from reconciler.sources.status import sources_lines, sources_status
from reconciler.types import Obj


def template_dir() -> str:
    """repo-template/ of a source checkout, or the copy installed as the gitship_template package."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    here = os.path.join(root, "repo-template")
    if os.path.isdir(here):
        return here
    import importlib.util

    spec = importlib.util.find_spec("gitship_template")
    if spec and spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    die("the repository template is not installed")


FALLBACK_NAME = "gitship"
FALLBACK_EMAIL = "gitship@localhost"


def fallback_identity(repo: str, env: Mapping[str, str]) -> list[str]:
    """The ``-c`` options that give `git commit` gitship's identity where the user's git has none.

    git takes the author's name from GIT_AUTHOR_NAME, else author.name, else user.name (the committer
    likewise), and the email from GIT_AUTHOR_EMAIL, author.email, user.email, else EMAIL. Only a
    user.name or user.email missing from git's configuration is filled in, so everything that outranks
    them still wins; a name or address git would guess from the host is not the user's identity.
    """

    def configured(key: str) -> bool:
        p = subprocess.run(["git", "-C", repo, "config", "--get", key], capture_output=True, text=True)
        return bool(p.stdout.strip())

    extra = []
    if not configured("user.name"):
        extra += ["-c", f"user.name={FALLBACK_NAME}"]
    if not configured("user.email") and not env.get("EMAIL"):
        extra += ["-c", f"user.email={FALLBACK_EMAIL}"]
    return extra


def cmd_init(args: argparse.Namespace) -> int:
    dest = os.path.abspath(args.dir)
    if os.path.exists(dest) and os.listdir(dest):
        die(f"{dest} exists and is not empty")
    shutil.copytree(
        template_dir(), dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "__init__.py")
    )

    def git(*a: str) -> None:
        subprocess.run(["git", "-C", dest, *a], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git(*fallback_identity(dest, os.environ), "commit", "-q", "-m", "Initial commit from the gitship template")
    print(f"Initialized a gitship repository in {dest}")
    print(f"Next: gitship up {args.dir}")
    return 0


def add_init(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("init", parents=[common], help="create a repository from the template")
    s.add_argument("dir")
    s.set_defaults(func=cmd_init)


def cmd_up(args: argparse.Namespace) -> int:
    from reconciler.daemon import Options, run
    from reconciler.ops.upflags import up_options

    opts = Options(
        source=args.repo,
        state_dir=state_dir(args),
        runtime=args.runtime,
        branch=args.branch,
        path=args.path or "",
        interval=args.interval,
        service_cidr=args.service_cidr,
        pod_cidr=args.pod_cidr,
        dns_addr=args.dns_addr,
        isolation=args.isolation,
        data_plane=args.data_plane,
        node_address=args.node_address,
        decryption_key_file=os.path.abspath(args.decryption_key_file) if args.decryption_key_file else None,
        allow_host_paths=tuple(os.path.abspath(p) for p in args.allow_host_path or ()),
        ingress_ports=(args.ingress_http_port, args.ingress_https_port),
        api_addr=args.api_addr,
        **ops_options(args),
        **up_options(args),  # --verify-signatures, --verify-gpg, --signing-key, --notify
        web_addr=args.web_addr,
        prune_threshold=args.prune_threshold,
        sources_file=os.path.abspath(args.sources) if args.sources else None,
        docker_host=args.docker_host,
        swarm_node_apis=tuple(args.swarm_node_api or ()),
    )
    return run(opts)


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    """`gitship kubeconfig`: the kubeconfig `gitship up` wrote (KUBECONFIG=... kubectl get pods)."""
    from reconciler.kapi.certs import kubeconfig_path

    path = kubeconfig_path(state_dir(args))
    if not os.path.exists(path):
        die(f"no kubeconfig in {state_dir(args)}: start `gitship up` (with --api-addr other than none) first")
    with open(path, encoding="utf-8") as f:
        sys.stdout.write(f.read())
    return 0


def add_up(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("up", parents=[common], help="run the reconciler in the foreground")
    s.add_argument("repo", help="a local repository path or a git URL")
    s.add_argument("--runtime", default="inprocess", choices=["inprocess", "docker", "swarm"])
    s.add_argument("--docker-host", default=None, help="the Docker Engine (swarm: a manager); default DOCKER_HOST")
    s.add_argument("--swarm-node-api", action="append", metavar="NODE=URL", help="a Swarm node's Engine API (exec)")
    s.add_argument("--branch")
    s.add_argument("--path", help="the folder of the repository that holds the manifests")
    s.add_argument("--interval", type=float, default=30.0, help="seconds between fetches of a URL (default 30)")
    s.add_argument(
        "--service-cidr",
        default=None,
        help="ClusterIP range (default 10.96.0.0/16 with pod sandboxes, 127.96.0.0/16 with loopback pods; "
        "with --runtime docker 10.97.0.0/16)",
    )
    s.add_argument(
        "--pod-cidr",
        default=None,
        help="pod addresses (default 10.244.0.0/16 with pod sandboxes, else 127.244.0.0/16; "
        "a 127.x range means loopback pods without sandboxes)",
    )
    s.add_argument(
        "--isolation",
        default="auto",
        choices=["auto", "sandbox", "host"],
        help="in-process pods: sandbox = own network, hostname, mounts (needs root); host = the host's "
        "network, on loopback addresses; auto (default) = sandbox when possible",
    )
    s.add_argument(
        "--data-plane",
        default="auto",
        choices=["auto", "nftables", "proxy"],
        help="what carries Service traffic: nftables rules in the kernel (needs root and nft; Services keep "
        "working while gitship restarts) or gitship's userspace proxy; auto (default) = nftables when possible",
    )
    s.add_argument(
        "--dns-addr",
        default=None,
        help="where the cluster DNS listens (HOST:PORT; default the service CIDR's .10 on port 53, e.g. 10.96.0.10:53)",
    )
    s.add_argument("--node-address", default="0.0.0.0", help="host address for NodePort and LoadBalancer")
    add_ingress_options(s)
    s.add_argument(
        "--decryption-key-file",
        metavar="PATH",
        help="age identities (AGE-SECRET-KEY-1... lines) to decrypt SOPS-encrypted manifests; "
        "default: env SOPS_AGE_KEY_FILE, else SOPS_AGE_KEY",
    )
    s.add_argument(
        "--allow-host-path",
        metavar="PREFIX",
        action="append",
        default=[],
        help="let pods mount hostPath volumes at PREFIX or under it (symlinks resolved; repeatable; "
        "default: none, a hostPath volume keeps its pod waiting). The repository cannot allow it",
    )
    s.add_argument(
        "--api-addr",
        default="127.0.0.1:6443",
        metavar="HOST:PORT",
        help="where the Kubernetes API (HTTPS, for kubectl) listens; `none` turns it off (default 127.0.0.1:6443)",
    )
    add_ops_options(s)
    add_up_flags(s)  # reconciler/ops/upflags.py
    s.add_argument(
        "--web-addr",
        default="127.0.0.1:7080",
        metavar="HOST:PORT",
        help="the web view (default 127.0.0.1:7080; `none`: off)",
    )
    add_prune_options(s)
    s.add_argument("--sources", metavar="FILE", help="a YAML file listing more sources (docs/operations-sources.md)")
    s.set_defaults(func=cmd_up)
    k = sub.add_parser("kubeconfig", parents=[common], help="print the kubeconfig `gitship up` wrote (for kubectl)")
    k.set_defaults(func=cmd_kubeconfig)


def _live_status(args: argparse.Namespace) -> dict[str, Any] | None:
    """The running daemon's own status, or None when it does not answer."""
    from reconciler.api import request

    try:
        _, live = request(socket_path(args), "GET", "/v1/status", timeout=5)
    except OSError:
        return None
    return live if isinstance(live, dict) else None


def status_object(meta: dict[str, Any], live: dict[str, Any] | None) -> Obj:
    """`gitship status -o json`: the tracked repository as a GitRepository object (Flux's shape)."""
    src = meta.get("source") or {}
    ready = meta.get("ready") or {"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": ""}
    runtime = (live or {}).get("runtime") or meta.get("runtime") or {}
    plane = (live or {}).get("dataPlane") or meta.get("dataPlane") or {}
    dns = (live or {}).get("dns") or (meta.get("dns") or {}).get("address")
    return {
        "apiVersion": "gitship.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": os.path.basename(src.get("url", "").rstrip("/")) or "repository"},
        "spec": {
            "url": src.get("url"),
            "branch": src.get("branch"),
            "path": src.get("path") or "./",
            "runtime": runtime.get("name"),
        },
        "status": {
            "lastAppliedRevision": meta.get("lastAppliedRevision"),
            "lastAttemptedRevision": meta.get("lastAttemptedRevision"),
            "conditions": [ready],
            "runtime": runtime,
            "dataPlane": plane,
            "ingress": (live or {}).get("ingress"),
            "dnsAddress": dns,
            "sourceError": meta.get("sourceError"),
            "pruneHeld": meta.get("pruneHeld"),
            "pruneKept": meta.get("pruneKept") or [],
            "daemon": "running" if live else "stopped",
        },
    }


def status_lines(out: Obj) -> list[str]:
    """`gitship status` as text, from status_object's value."""
    spec, st = out["spec"], out["status"]
    runtime, ready = st["runtime"], st["conditions"][0]
    rt_line = f"Runtime:       {runtime.get('name')}"
    if runtime.get("engine") == "unreachable":
        rt_line += f" (engine unreachable, retrying: {runtime.get('error')})"
    elif runtime.get("engineVersion"):
        rt_line += f" (Docker Engine {runtime['engineVersion']}, API {runtime.get('apiVersion')})"
    lines = [
        f"Source:        {spec['url']} (branch {spec['branch']}, path {spec['path']})",
        f"Daemon:        {st['daemon']}",
        rt_line,
        *_network_lines(runtime, st.get("dataPlane") or {}),
        *ingress_lines(st.get("ingress")),
        *_resource_lines(runtime.get("resources")),
        f"DNS:           {st['dnsAddress']}",
        f"Applied:       {st['lastAppliedRevision'] or '<none>'}",
        f"Attempted:     {st['lastAttemptedRevision'] or '<none>'}",
        f"Ready:         {ready['status']} ({ready['reason']}) {ready.get('message', '')}",
    ]
    if st["sourceError"]:
        lines.append(f"Source error:  {st['sourceError']}")
    lines += prune_status_lines(st) + sources_lines(st.get("sources") or [])
    return lines + without_effect_line(st.get("storedWithoutEffect") or {})


def _network_lines(runtime: dict[str, Any], plane: dict[str, Any]) -> list[str]:
    """Which isolation pods get and what carries Service traffic, with the reason for a fallback."""
    lines = []
    iso = runtime.get("isolation")
    if iso == "sandbox":
        lines.append(
            f"Isolation:     pod sandboxes (own network, hostname, mounts; bridge {runtime.get('bridge')}, "
            f"pods {runtime.get('podCIDR')})"
        )
    elif iso:
        lines.append(f"Isolation:     {runtime.get('isolationReason') or 'pods share the host network'}")
    name = plane.get("dataPlane")
    if name == "nftables":
        lines.append(f"Data plane:    nftables (table {plane.get('table')}; Services outlive a gitship restart)")
    elif name:
        why = f": {plane['reason']}" if plane.get("reason") else ""
        lines.append(f"Data plane:    gitship's userspace proxy{why}")
    return lines


def _resource_lines(res: Any) -> list[str]:
    """Whether container limits are enforced (in-process: the cgroups it could use, and why not)."""
    if not isinstance(res, dict):
        return []
    enforced = ", ".join(res.get("enforced") or [])
    missing = res.get("notEnforced") or {}
    parts = []
    if enforced:
        parts.append(f"limits enforced through cgroup {res.get('cgroup')} ({enforced})")
    for controller, why in sorted(missing.items()):
        parts.append(f"{controller} limits not enforced: {why}")
    if not parts:
        parts.append("limits not enforced: no cgroup controllers available")
    return [f"Resources:     {'; '.join(parts)}"]


_STATUS_META = (
    "source",
    "ready",
    "runtime",
    "dataPlane",
    "dns",
    "lastAppliedRevision",
    "lastAttemptedRevision",
    "sourceError",
    *META_KEYS,  # web, metrics, webhook (reconciler/cli/endpoints.py)
    "pruneHeld",
    "pruneKept",
)


def cmd_status(args: argparse.Namespace) -> int:
    store = open_store(args)
    meta = {key: store.get_meta(key) for key in _STATUS_META}
    out = status_object(meta, _live_status(args))
    out["status"]["storedWithoutEffect"] = without_effect_summary(store.kind_counts())
    out["status"].update(endpoint_status(meta, out["status"]["daemon"] == "running"))
    out["status"]["sources"] = sources_status(store.get_meta)  # several sources (reconciler/sources)
    if args.output == "json":
        print(json.dumps(out, indent=4))
        return 0
    print("\n".join(status_lines(out) + endpoint_lines(out["status"])))
    return 0


def add_status(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("status", parents=[common])
    s.add_argument("-o", "--output", choices=["json"])
    s.set_defaults(func=cmd_status)
