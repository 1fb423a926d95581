"""gitship's web view: a live, read-mostly dashboard served by the daemon (docs/web.md).

health    PURE: an object's health as Argo CD names it (Healthy, Progressing, Degraded, Suspended, Missing)
tree      PURE: the object tree (Deployment -> ReplicaSets -> Pods, Services -> endpoints, ...), counts
picture   PURE: a Deployment's rollout as numbers and as an SVG picture
auth      one-time login tokens (files in the state dir), sessions, CSRF tokens
pages     what each page shows, gathered from the daemon (store, live objects, git, the log)
actions   pause / resume / undo / revert-to-here: commits, as the CLI makes them
server    the aiohttp application on the daemon's loop: routes, server-sent events, ``start_web``
"""
