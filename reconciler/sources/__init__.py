"""Several sources: each reconciled on its own, composed into the one desired state (docs/operations-sources.md)."""
