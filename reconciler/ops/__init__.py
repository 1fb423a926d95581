"""Operating gitship on a host: a systemd service (systemd.py, sdnotify.py), Prometheus metrics
(metrics.py), a webhook receiver for push events (webhook.py); start.py wires them into
`gitship up` (docs/operations.md)."""
