"""Operating gitship: service, metrics, webhooks, commit verification, notifications, pruning."""
