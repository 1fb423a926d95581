"""The systemd unit of `gitship service install`: rendering it (pure) and where it goes.

Where it sits: reconciler/cli/service.py parses the command line and writes the file; this module
decides its content. The choices, each for a reason (docs/operations.md, "Run as a service"):

* ``Type=notify``: `gitship up` says READY=1 once a revision is applied (reconciler/ops/sdnotify.py),
  so units ordered after gitship.service start when the applied state runs.
* ``Restart=on-failure``: a crash (non-zero exit, a signal other than the stop) brings gitship back;
  the new daemon adopts the pods that kept running.
* ``KillMode=process``: on stop, SIGTERM goes to gitship alone, which stops every pod itself with
  the pod's terminationGracePeriodSeconds and preStop hook; after a crash the pods are left running
  for the restarted daemon to adopt (systemd's default would kill them with it).
* ``TimeoutStopSec``: the longest grace period of the pods plus a margin (``stop_timeout``), so
  systemd's SIGKILL never cuts a graceful termination short.
* The state dir is the working directory; logs go to the journal (stdout/stderr, JSON lines) and
  to ``<state-dir>/reconcile.log``.
* The file's mode: 0600 when the command line carries a secret (``unit_mode``: a ``--notify`` URL,
  where a Slack webhook's path is its token, or a URL with credentials), else 0644.
* `gitship service uninstall` removes only a file that starts with ``HEADER`` (one gitship wrote).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

UNIT_NAME = "gitship.service"
SYSTEM_UNIT_DIR = "/etc/systemd/system"
SYSTEM_STATE_DIR = "/var/lib/gitship"
DEFAULT_GRACE = 30  # a pod's terminationGracePeriodSeconds when it sets none (Kubernetes' default)
# what stopping adds to the longest grace period: the daemon's loops (10 s), the data plane,
# a preStop hook's minimum after its grace (2 s, runtime/kernel/hooks.py) and the store
STOP_MARGIN = 30

HEADER = "# Written by `gitship service install`"
SECRET_OPTIONS = ("--notify",)  # `gitship up` options whose value is a secret (a Slack URL holds its token)

_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def quote(arg: str) -> str:
    """One word of an ``ExecStart=`` line as systemd parses it (systemd.service(5), "Command
    lines"): quoted when it holds anything but plain characters; ``%`` and ``$`` escaped."""
    if "\n" in arg or "\0" in arg:
        raise ValueError(f"a unit's command line cannot hold a newline or NUL: {arg!r}")
    if not _PLAIN.match(arg):
        arg = '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg.replace("%", "%%").replace("$", "$$")


def stop_timeout(grace_periods: Iterable[float]) -> int:
    """TimeoutStopSec: the longest terminationGracePeriodSeconds (at least Kubernetes' default of
    30 s, the value of every pod that sets none) plus STOP_MARGIN."""
    longest = max([float(DEFAULT_GRACE), *(float(g) for g in grace_periods)])
    return int(longest + 0.999) + STOP_MARGIN


def unit_path(user: bool, home: str) -> str:
    """Where the unit goes: /etc/systemd/system, or ~/.config/systemd/user with --user."""
    if user:
        return os.path.join(home, ".config", "systemd", "user", UNIT_NAME)
    return os.path.join(SYSTEM_UNIT_DIR, UNIT_NAME)


def _has_credentials(word: str) -> bool:
    """A URL naming a password, or a user over HTTP(S) (a token: https://TOKEN@host/...)."""
    if "://" not in word or "@" not in word:
        return False
    try:
        url = urlsplit(word)
        return url.password is not None or (url.scheme in ("http", "https") and bool(url.username))
    except ValueError:
        return True  # unparseable but shaped like one: keep it private


def carries_secrets(command: Sequence[str]) -> bool:
    """Whether the unit's command line holds a secret: a SECRET_OPTIONS value or a URL with credentials."""
    for i, word in enumerate(command):
        name = word.partition("=")[0]
        if name in SECRET_OPTIONS or (i and command[i - 1] in SECRET_OPTIONS) or _has_credentials(word):
            return True
    return False


def unit_mode(command: Sequence[str]) -> int:
    """The unit file's permission bits: readable by its owner alone when it holds a secret."""
    return 0o600 if carries_secrets(command) else 0o644


def written_by_gitship(text: str) -> bool:
    return text.startswith(HEADER)


def booted() -> bool:
    """Whether systemd is the running init (sd_booted(3): /run/systemd/system exists)."""
    return os.path.isdir("/run/systemd/system")


@dataclass(frozen=True)
class UnitSpec:
    command: Sequence[str]  # the full command line: gitship's executable, "up", and its options
    state_dir: str
    source: str
    user: bool = False
    docker: bool = False
    timeout_stop: int = DEFAULT_GRACE + STOP_MARGIN
    restart_sec: int = 5
    environment: Sequence[str] = ()  # more Environment= assignments (NAME=VALUE)


def render(spec: UnitSpec) -> str:
    """The unit file's text."""
    # a user manager has neither network-online.target nor docker.service to order after
    after = [] if spec.user else ["network-online.target"] + (["docker.service"] if spec.docker else [])
    unit = [
        f"{HEADER} (docs/operations.md); run it again to change the options.",
        "[Unit]",
        f"Description=gitship GitOps reconciler for {spec.source.replace('%', '%%')}",
        *([f"After={' '.join(after)}", f"Wants={' '.join(after)}"] if after else []),
        # a crash loop stops after 5 failed starts in 5 minutes (then: systemctl reset-failed)
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=" + " ".join(quote(a) for a in spec.command),
        f"WorkingDirectory={spec.state_dir.replace('%', '%%')}",  # a path as it is: no quoting here
        f"Environment={quote('GITSHIP_STATE_DIR=' + spec.state_dir)}",
        "Environment=PYTHONUNBUFFERED=1",
        *(f"Environment={quote(e)}" for e in spec.environment),
        "Restart=on-failure",
        f"RestartSec={spec.restart_sec}",
        # the first clone and the first images may take long: READY=1 comes when a revision is applied
        "TimeoutStartSec=infinity",
        f"TimeoutStopSec={spec.timeout_stop}",
        "KillMode=process",
        "KillSignal=SIGTERM",
        "StandardOutput=journal",
        "StandardError=journal",
        "SyslogIdentifier=gitship",
        "",
        "[Install]",
        f"WantedBy={'default.target' if spec.user else 'multi-user.target'}",
        "",
    ]
    if not spec.user and spec.state_dir == SYSTEM_STATE_DIR:  # systemd makes /var/lib/gitship
        unit.insert(unit.index("Restart=on-failure"), "StateDirectory=gitship")
    return "\n".join(unit)
