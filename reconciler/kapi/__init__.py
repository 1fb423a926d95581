"""gitship's Kubernetes API: an HTTPS server in the daemon that kubectl and client libraries talk to.

Pure modules (no I/O; in the import contract): contract (the write side's interface), resources
(the kinds as REST resources, discovery documents), views (Status bodies, field selectors, Tables,
Events, EndpointSlices, the node), watch (resourceVersions and watch history), openapi (OpenAPI v3).
Edges: server (aiohttp: routes, authentication, discovery), reads (list/get/watch/logs, a pod's
DELETE), writing (the write verbs handed to writes.handle), certs (CA, serving certificate, token,
kubeconfig), host (what the server needs of the daemon). writes.py and the patch modules: the write
side (commits).
"""
