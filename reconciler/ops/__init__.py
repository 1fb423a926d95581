"""Operating gitship: a systemd service (systemd.py, sdnotify.py), Prometheus metrics (metrics.py), a webhook
receiver for push events (webhook.py), commit verification and signing (verify.py), notifications (notify.py,
notifyevents.py), safe pruning; start.py and upflags.py wire them into `gitship up` (docs/operations.md)."""
