"""East-west load and latency from inside the project's network (run with `docker exec`).

    caller.py load URL TCP_HOST:PORT   new connection per request to both until /tmp/stop exists
    caller.py latency URL_A URL_B N ROUNDS   sequential keep-alive GETs, alternating rounds
    caller.py saturate URL SECONDS           rising concurrency: req/s and errors per level

Prints one JSON document.
"""

import http.client
import json
import os
import socket
import statistics
import sys
import threading
import time
import urllib.parse


def get_once(url: str) -> None:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    try:
        conn.request("GET", u.path or "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise OSError(f"HTTP {resp.status}")
    finally:
        conn.close()


def tcp_once(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"hi\n")
        if not s.makefile().readline():
            raise ConnectionError("closed before answering")


def load(url: str, tcp: str) -> dict:
    host, _, port = tcp.partition(":")
    counts = {"http": [0, 0], "tcp": [0, 0]}
    errors: dict[str, int] = {}
    while not os.path.exists("/tmp/stop"):
        for kind, call in (
            ("http", lambda: get_once(url)),
            ("tcp", lambda: tcp_once(host, int(port))),
        ):
            try:
                call()
                counts[kind][0] += 1
            except Exception as e:  # every failure counts, whatever its kind
                counts[kind][1] += 1
                key = f"{kind} {type(e).__name__}"
                errors[key] = errors.get(key, 0) + 1
        time.sleep(0.005)
    return {
        "http_ok": counts["http"][0],
        "http_failed": counts["http"][1],
        "tcp_ok": counts["tcp"][0],
        "tcp_failed": counts["tcp"][1],
        "errors": errors,
    }


def p50(url: str, n: int) -> float:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", "/")
        conn.getresponse().read()
        lat.append(time.perf_counter() - t)
    conn.close()
    return statistics.median(lat)


def latency(a: str, b: str, n: int, rounds: int) -> dict:
    out = {a: [], b: []}
    for _ in range(rounds):
        for url in (a, b):
            out[url].append(p50(url, n))
    return {url: statistics.median(v) * 1000 for url, v in out.items()}


def _hammer(url: str, end: float, counts: list, lock: threading.Lock) -> None:
    """GET `url` until `end`; counts[0] successes, counts[1] failures."""
    while time.monotonic() < end:
        try:
            get_once(url)
            with lock:
                counts[0] += 1
        except Exception:
            with lock:
                counts[1] += 1


def saturate(url: str, seconds: float) -> list:
    levels = []
    for workers in (1, 2, 4, 8, 16, 32, 64):
        counts = [0, 0]
        lock = threading.Lock()
        end = time.monotonic() + seconds
        threads = [
            threading.Thread(target=_hammer, args=(url, end, counts, lock)) for _ in range(workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        levels.append({"workers": workers, "rps": round(counts[0] / seconds), "failed": counts[1]})
    return levels


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "load":
        result = load(sys.argv[2], sys.argv[3])
    elif cmd == "latency":
        result = latency(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        result = saturate(sys.argv[2], float(sys.argv[3]))
    print(json.dumps(result))
