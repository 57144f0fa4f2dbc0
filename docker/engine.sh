#!/usr/bin/env bash
# docker/engine.sh start|stop|env STATE_DIR
#
# Use the Docker engine that is running; otherwise install Debian's docker.io and start a
# private dockerd (data under STATE_DIR), stopped later by its PID with `stop`.
# `start` prints the DOCKER_HOST to export; `env` prints it again for later commands.
set -euo pipefail
action=$1 state=$(realpath -m "$2")
# a socket path must stay under 108 bytes, wherever the checkout lives
sock="/tmp/textless-docker-$(printf %s "$state" | md5sum | cut -c1-10).sock" pidfile="$state/dockerd.pid"

engine_up() { DOCKER_HOST=$1 docker info >/dev/null 2>&1; }

case $action in
start)
    if [ -z "${DOCKER_HOST:-}" ] && engine_up "unix:///var/run/docker.sock"; then
        echo "unix:///var/run/docker.sock"; exit 0          # the machine's own engine
    fi
    if [ -n "${DOCKER_HOST:-}" ] && engine_up "$DOCKER_HOST"; then
        echo "$DOCKER_HOST"; exit 0
    fi
    if [ -S "$sock" ] && engine_up "unix://$sock"; then
        echo "unix://$sock"; exit 0                          # ours, from an earlier start
    fi
    if ! command -v dockerd >/dev/null; then
        echo "engine: no Docker engine running: installing Debian's docker.io" >&2
        [ "$(id -u)" = 0 ] || { echo "engine: need root to install docker.io; start Docker yourself" >&2; exit 1; }
        apt-get install -y --no-install-recommends docker.io >/dev/null 2>&1 || {
            apt-get update >/dev/null && apt-get install -y --no-install-recommends docker.io >/dev/null; }
    fi
    mkdir -p "$state/data" "$state/exec"
    echo "engine: starting a private dockerd (data in $state/data)" >&2
    setsid dockerd --data-root "$state/data" --exec-root "$state/exec" -H "unix://$sock" \
        --pidfile "$pidfile" >"$state/dockerd.log" 2>&1 < /dev/null &
    for _ in $(seq 1 100); do
        engine_up "unix://$sock" && { echo "unix://$sock"; exit 0; }
        sleep 0.2
    done
    echo "engine: dockerd did not come up; see $state/dockerd.log" >&2
    tail -5 "$state/dockerd.log" >&2
    exit 1
    ;;
stop)
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        echo "engine: stopped private dockerd ($pid)" >&2
    fi
    ;;
*)
    echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac
