"""`gitship service install [--user] [--print] REPO [up options...]`: a systemd unit for `gitship up`;
`gitship service uninstall [--user]`: the unit removed again.

Where it sits: command-line parsing and the file; the unit's content is reconciler/ops/systemd.py.
The `up` options are checked by `gitship up`'s own parser, so a typo fails here and not at boot;
relative paths become absolute (the service runs in the state dir).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence

from reconciler.cli.common import Subparsers, die
from reconciler.ops import systemd
from reconciler.types import Obj

# `gitship up` options whose value is a path of this machine (made absolute in the unit)
PATH_OPTIONS = ("--state-dir", "--decryption-key-file", "--allow-host-path", "--webhook-secret-file")


def absolute_args(up_args: Sequence[str], repo: str, is_url: bool) -> list[str]:
    """``up_args`` with the repository (unless a URL) and every PATH_OPTIONS value made absolute."""
    out: list[str] = []
    repo_done = is_url
    expect_path = False
    for i, tok in enumerate(up_args):
        if expect_path:
            out.append(os.path.abspath(tok))
            expect_path = False
            continue
        name, eq, value = tok.partition("=")
        if name in PATH_OPTIONS:
            out.append(f"{name}={os.path.abspath(value)}" if eq else tok)
            expect_path = not eq
            continue
        prev = up_args[i - 1] if i else ""
        if not repo_done and tok == repo and (not prev.startswith("-") or "=" in prev):
            out.append(os.path.abspath(tok))
            repo_done = True
            continue
        out.append(tok)
    return out


def grace_periods(objects: Iterable[Obj]) -> list[float]:
    """The terminationGracePeriodSeconds of live pods and of the pod templates of workloads."""
    out = []
    for o in objects:
        spec = o.get("spec") or {}
        pod_spec = spec if o.get("kind") == "Pod" else ((spec.get("template") or {}).get("spec") or {})
        if o.get("kind") == "CronJob":
            pod_spec = ((((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")) or {}
        g = pod_spec.get("terminationGracePeriodSeconds")
        if isinstance(g, (int, float)) and not isinstance(g, bool):
            out.append(float(g))
    return out


def _stored_grace_periods(state: str) -> list[float]:
    """Grace periods of what the state dir's store holds (none when there is no store yet)."""
    from reconciler.errors import StoreError
    from reconciler.store import Store, db_path

    if not os.path.exists(db_path(state)):
        return []
    try:
        store = Store(state, readonly=True)
    except StoreError:
        return []
    try:
        return grace_periods([*store.cluster(), *store.desired().values()])
    finally:
        store.close()


def gitship_command() -> list[str]:
    """How the unit runs gitship: the installed `gitship` script next to this Python, else on PATH,
    else this Python with ``-m reconciler.cli``."""
    here = os.path.join(os.path.dirname(sys.executable), "gitship")
    if os.access(here, os.X_OK):
        return [here]
    found = shutil.which("gitship")
    return [os.path.abspath(found)] if found else [sys.executable, "-m", "reconciler.cli"]


def up_parser() -> argparse.ArgumentParser:
    """`gitship up`'s own parser (reconciler/cli/up.py), with the common --state-dir."""
    from reconciler.cli.up import add_up

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir")
    common.add_argument("-n", "--namespace")
    p = argparse.ArgumentParser(prog="gitship service install")
    add_up(p.add_subparsers(dest="cmd", required=True), common)
    return p


def cmd_service_install(args: argparse.Namespace) -> int:
    from reconciler.paths import default_state_dir
    from reconciler.source.git import is_url

    up_args: list[str] = list(args.up_args or [])
    if up_args[:1] == ["--"]:
        up_args = up_args[1:]
    if not up_args:
        die("give `gitship up`'s arguments: gitship service install [--user] REPO [up options...]")
    up = up_parser().parse_args(["up", *up_args])  # a typo fails now (exit 2), not at boot
    command = absolute_args(up_args, up.repo, is_url(up.repo))
    state = up.state_dir or args.state_dir or (default_state_dir() if args.user else systemd.SYSTEM_STATE_DIR)
    state = os.path.abspath(state)
    if up.state_dir is None:
        command += ["--state-dir", state]
    gitship = gitship_command()
    env = () if len(gitship) == 1 else (f"PYTHONPATH={os.path.dirname(os.path.dirname(systemd.__file__))}",)
    spec = systemd.UnitSpec(
        command=[*gitship, "up", *command],
        state_dir=state,
        source=up.repo if is_url(up.repo) else os.path.abspath(up.repo),
        user=args.user,
        docker=up.runtime == "docker",
        timeout_stop=args.stop_timeout or systemd.stop_timeout(_stored_grace_periods(state)),
        environment=env,
    )
    text = systemd.render(spec)
    if args.print:
        sys.stdout.write(text)
        return 0
    path = args.unit_file or systemd.unit_path(args.user, os.path.expanduser("~"))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.makedirs(state, exist_ok=True)
        write_private(path, text, systemd.unit_mode(spec.command))
    except OSError as e:
        hint = "" if args.user else " (a system unit needs root; --user writes a user unit)"
        die(f"cannot write {path}: {e.strerror or e}{hint}")
    ctl = "systemctl --user" if args.user else "systemctl"
    print(f"Wrote {path}")
    print(f"Next: {ctl} daemon-reload && {ctl} enable --now {systemd.UNIT_NAME}")
    print(f"Logs: journalctl {'--user ' if args.user else ''}-u {systemd.UNIT_NAME} -f  (and {state}/reconcile.log)")
    return 0


def write_private(path: str, text: str, mode: int) -> None:
    """``text`` to ``path`` with exactly ``mode`` (not widened by the umask nor kept from an older
    file), through a new file renamed over it: no moment where a secret is readable by others."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _wants_links(unit: str) -> list[str]:
    """The ``*.wants/gitship.service`` links `systemctl enable` made next to ``unit``."""
    folder = os.path.dirname(unit)
    out = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        link = os.path.join(folder, name, os.path.basename(unit))
        if name.endswith(".wants") and os.path.islink(link):
            out.append(link)
    return out


def _systemctl(user: bool, *args: str) -> bool:
    cmd = ["systemctl", *(["--user"] if user else []), *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"warning: {' '.join(cmd)}: {e}", file=sys.stderr)
        return False
    if p.returncode != 0:
        print(f"warning: {' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}", file=sys.stderr)
    return p.returncode == 0


def cmd_service_uninstall(args: argparse.Namespace) -> int:
    """Stops and disables the service where systemd runs (``systemctl disable --now``), removes the
    unit file `service install` wrote and its ``*.wants`` links, then reloads systemd, or says to."""
    path = args.unit_file or systemd.unit_path(args.user, os.path.expanduser("~"))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        print(f"No unit at {path}: nothing to remove")
        return 0
    except OSError as e:
        die(f"cannot read {path}: {e.strerror or e}")
    if not systemd.written_by_gitship(text):
        die(f"{path} was not written by `gitship service install`: left as it is")
    ctl = "systemctl --user" if args.user else "systemctl"
    managed = systemd.booted() and not args.unit_file  # a unit elsewhere is not systemd's to stop
    if managed and _systemctl(args.user, "disable", "--now", systemd.UNIT_NAME):
        print(f"Stopped and disabled {systemd.UNIT_NAME}")
    try:
        for link in _wants_links(path):
            os.unlink(link)
        os.unlink(path)
    except OSError as e:
        die(f"cannot remove {e.filename or path}: {e.strerror or e}")
    print(f"Removed {path}")
    state = next((line.split("=", 1)[1] for line in text.splitlines() if line.startswith("WorkingDirectory=")), "")
    if state:
        print(f"Kept the state dir {state.replace('%%', '%')} (pods that ran under the service stay recorded there)")
    if managed and _systemctl(args.user, "daemon-reload"):
        print(f"Ran {ctl} daemon-reload")
    else:
        print(f"Next: {ctl} daemon-reload")
    return 0


def add_service(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("service", help="run gitship as a systemd service")
    # argparse asks for the subcommand first
    s.set_defaults(func=lambda args: die("gitship service install|uninstall ..."))
    ssub = s.add_subparsers(dest="service_cmd", required=True)
    i = ssub.add_parser(
        "install",
        parents=[common],
        help="write a systemd unit that runs `gitship up` with the options given",
        description="Writes gitship.service (Type=notify, Restart=on-failure) for `gitship up REPO [options]`; "
        "the options after REPO are `gitship up`'s own.",
    )
    i.add_argument("--user", action="store_true", help="a user unit (~/.config/systemd/user) instead of a system one")
    i.add_argument("--print", action="store_true", help="print the unit instead of writing it")
    i.add_argument("--unit-file", metavar="PATH", help="write the unit here instead of systemd's directory")
    i.add_argument(
        "--stop-timeout",
        type=int,
        metavar="SECONDS",
        help="TimeoutStopSec (default: the longest terminationGracePeriodSeconds the state dir knows, "
        f"at least {systemd.DEFAULT_GRACE}, plus {systemd.STOP_MARGIN})",
    )
    i.add_argument("up_args", nargs=argparse.REMAINDER, metavar="REPO [up options]")
    i.set_defaults(func=cmd_service_install)
    u = ssub.add_parser(
        "uninstall",
        parents=[common],
        help="stop and remove the unit `service install` wrote",
        description="With systemd running: systemctl disable --now, remove the unit, daemon-reload. Without: "
        "remove the unit and its *.wants links. The state dir is kept.",
    )
    u.add_argument("--user", action="store_true", help="the user unit (~/.config/systemd/user)")
    u.add_argument("--unit-file", metavar="PATH", help="the unit written with install --unit-file")
    u.set_defaults(func=cmd_service_uninstall)
