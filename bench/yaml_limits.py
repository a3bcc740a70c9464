"""How fast, and in how much memory, hostile compose files are refused (issue 8, item 6).

Each case is loaded in a fresh child process, twice: once timed (wall time of the loader),
once traced for the peak of what Python allocated while loading (tracemalloc; the file's own
text is read before and not counted). A realistic file (the example shop's compose.yaml
repeated as 40 services) is loaded the same way, as the yardstick.

    .venv/bin/python bench/yaml_limits.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from common import ROOT

CHILD = textwrap.dedent(
    """
    import json, sys, time, tracemalloc
    sys.path.insert(0, sys.argv[1])
    from conveyor.errors import ConveyorError
    from conveyor.spec.yamlpos import load_yaml
    text = sys.stdin.read()

    def load():
        try:
            load_yaml(text, "case.yaml", version="1.2")
            return "loaded"
        except ConveyorError as exc:
            return str(exc).splitlines()[0][:90]

    start = time.perf_counter()
    outcome = load()
    seconds = time.perf_counter() - start
    tracemalloc.start()  # a second run, traced: tracing slows it, so it is not timed
    load()
    peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "outcome": outcome}))
    """
)


def laughs(levels: int) -> str:
    text = 'x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for level in range(levels):
        text += f"x-l{level}: &l{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
        previous = f"l{level}"
    return text + f"services:\n  web:\n    image: nginx\n    labels: *{previous}\n"


def realistic(services: int) -> str:
    out = ["services:"]
    for n in range(services):
        out += [
            f"  svc{n}:",
            f"    image: registry.local/app{n}:1.{n}",
            "    environment: {LOG_LEVEL: info, WORKERS: '4', DEBUG: no}",
            f"    ports: ['{8000 + n}:8000']",
            "    healthcheck: {test: [CMD, curl, -f, http://localhost:8000/health], interval: 10s}",
            "    deploy: {replicas: 2, update_config: {parallelism: 1, order: start-first}}",
        ]
    return "\n".join(out) + "\n"


CASES = {
    "realistic (40 services)": realistic(40),
    "billion laughs (9 levels of 10)": laughs(9),
    "nested flow lists (100,000 deep)": "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "nested block mappings (1,000 deep)": "a:\n"
    + "".join("  " * i + f"k{i}:\n" for i in range(1, 1000)),
    "control character at the end of 1 MiB": "a: " + "x" * (1024 * 1024) + "\x07\n",
    "9 MiB of comments": "#" * (9 * 1024 * 1024) + "\n",
}


def main() -> None:
    print(f"{'case':<42} {'seconds':>8} {'peak MiB':>9}  outcome")
    for name, text in CASES.items():
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(ROOT / "src")],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        row = json.loads(proc.stdout)
        print(f"{name:<42} {row['seconds']:>8.3f} {row['peak_mb']:>9.1f}  {row['outcome']}")


if __name__ == "__main__":
    main()
