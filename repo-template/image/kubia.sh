#!/bin/sh
# The tutorial's kubia app for Docker, in busybox sh: answers every HTTP request on
# $PORT (default 8080) with "This is <version> running in pod <hostname>".
# <version> is $APP_VERSION (set by the Dockerfile's VERSION build argument); the
# hostname of a gitship pod is the pod's name. SIGTERM stops it at once with exit 0.
PORT="${PORT:-8080}"
mkdir -p /www
echo "This is ${APP_VERSION:-v1} running in pod $(hostname)" > /www/index.html
echo "Kubia server starting on port $PORT (${APP_VERSION:-v1})"
httpd -f -p "$PORT" -h /www &
pid=$!
trap 'kill $pid 2>/dev/null; echo "Kubia server stopped"; exit 0' TERM INT
wait $pid
