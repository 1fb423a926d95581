"""The built-in ingress controller's engine: HAProxy, configured by ``render.py`` (pure) and run by
``engine.py`` (a supervised child process, reloaded without dropping connections)."""
