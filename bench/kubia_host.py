"""The bench's app for pods that share the host's network (`gitship up --isolation host`, today's
loopback mode): the template's kubia app as it was before pod sandboxes, so the bench can measure
today's mode beside sandboxes. It answers every HTTP request with "This is <version> running in
pod <hostname>".

Pods without a sandbox share the host's network, so replicas cannot all bind 0.0.0.0:8080 (the
template's app as the tutorial has it): this one binds POD_IP (the pod's own loopback address)
and PORT (default 8080); HOSTNAME is the pod's name, and
CONTAINER_IMAGE is the image reference of the container, whose tag names the
version (qinchaowhut/allen:v2 -> v2). On SIGTERM it stops accepting, finishes
the requests in flight and exits, so a rollout drops no request: a response
written after SIGTERM says "Connection: close" (a busy keep-alive client moves
to another pod instead of holding this one until it is killed), and idle
keep-alive connections end within the handler's timeout.
"""

import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

image = os.environ.get("CONTAINER_IMAGE", "kubia:v1")
VERSION = os.environ.get("APP_VERSION") or (image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "v1")
HOST = os.environ.get("HOSTNAME") or socket.gethostname()
STOPPING = threading.Event()  # set on SIGTERM
BODY = f"This is {VERSION} running in pod {HOST}\n".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5  # idle keep-alive connections close, so a stopping pod drains fast

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        if STOPPING.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, fmt, *args):
        sys.stdout.write("Received request from %s\n" % self.client_address[0])
        sys.stdout.flush()


def main():
    addr = os.environ.get("POD_IP", "0.0.0.0")
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = False
    server.block_on_close = True
    print(f"Kubia server starting on {addr}:{port} ({VERSION})", flush=True)

    def stop(signum, frame):
        STOPPING.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    print("Kubia server stopped", flush=True)


if __name__ == "__main__":
    main()
