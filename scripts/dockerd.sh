#!/usr/bin/env bash
# Start dockerd when none answers; record its PID so the caller stops exactly it.
# Usage: scripts/dockerd.sh start PIDFILE | stop PIDFILE
set -euo pipefail
cmd=$1 pidfile=$2
case "$cmd" in
  start)
    if docker info >/dev/null 2>&1; then echo "dockerd: already answering"; exit 0; fi
    # no bridge and no iptables: containers use host networking and never land on a private range
    setsid dockerd --bridge=none --iptables=false --ip-masq=false >"${pidfile%.pid}.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 150); do docker info >/dev/null 2>&1 && { echo "dockerd: started (pid $(cat "$pidfile"))"; exit 0; }; sleep 0.2; done
    echo "dockerd did not answer; see ${pidfile%.pid}.log" >&2; exit 1 ;;
  stop)
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile"); rm -f "$pidfile"
    kill "$pid" 2>/dev/null || exit 0
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true ;;
esac
