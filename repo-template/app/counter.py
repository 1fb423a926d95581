"""The example web app of examples/redis-app/: a greeting from a mounted ConfigMap and a counter in Redis.

    GET /             the greeting: the file GREETING_FILE (default /etc/greeting/greeting), read on
                      every request, so a committed ConfigMap change shows without a restart
    GET /count        the counter's value
    POST /count       adds one to the counter and answers the new value (GET /count?incr=1 too)

Redis is reached by its Service name (REDIS_HOST, default "redis": the pod's cluster DNS resolves it)
on port 6379, with the password of REDIS_PASSWORD (from the SOPS-encrypted Secret redis-auth). The
Redis client is the few lines below (RESP over a socket), so the app needs only Python's standard library.
"""

import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GREETING_FILE = os.environ.get("GREETING_FILE", "/etc/greeting/greeting")
REDIS = (os.environ.get("REDIS_HOST", "redis"), 6379)
KEY = "counter"


def redis(*command):
    """One Redis command on a new connection (AUTH first when a password is set): its reply."""
    password = os.environ.get("REDIS_PASSWORD")
    with socket.create_connection(REDIS, timeout=5) as sock:
        f = sock.makefile("rwb")
        for cmd in ([("AUTH", password)] if password else []) + [command]:
            f.write(b"*%d\r\n" % len(cmd))
            for word in cmd:
                data = str(word).encode()
                f.write(b"$%d\r\n%s\r\n" % (len(data), data))
        f.flush()
        replies = [_reply(f) for _ in range(2 if password else 1)]
        return replies[-1]


def _reply(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if int(rest) < 0 else f.read(int(rest) + 2)[:-2].decode()
    return rest.decode()  # +OK


class Handler(BaseHTTPRequestHandler):
    def answer(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/count"):
            self.count(incr=self.path.endswith("incr=1"))
            return
        try:
            with open(GREETING_FILE, encoding="utf-8") as f:
                self.answer(200, f.read().strip())
        except OSError as e:
            self.answer(500, f"cannot read {GREETING_FILE}: {e.strerror}")

    def do_POST(self):
        if self.path.startswith("/count"):
            self.count(incr=True)
        else:
            self.answer(404, "not found")

    def count(self, incr):
        try:
            value = redis("INCR", KEY) if incr else redis("GET", KEY)
            self.answer(200, str(value or 0))
        except (OSError, RuntimeError) as e:
            self.answer(503, f"redis: {e}")

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.client_address[0], fmt % args))
        sys.stdout.flush()


if __name__ == "__main__":
    print(f"counter app on 0.0.0.0:8080, redis at {REDIS[0]}:{REDIS[1]}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
