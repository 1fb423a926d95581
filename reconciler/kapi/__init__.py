"""gitship's Kubernetes API: an HTTPS server in the daemon that kubectl and client libraries talk to.

Pure modules (no I/O): contract, discovery, tables, fieldsel, status. Edges: server (aiohttp),
certs (CA, serving certificate, token, kubeconfig files), reads (list/get/watch/logs), writes
(the write verbs as commits; the kwrite side).
"""
