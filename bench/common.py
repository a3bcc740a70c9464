"""Shared bits of the benchmark scripts: run the conveyor CLI, read its JSON, measure RSS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def conveyor(
    compose: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "conveyor", "-f", str(compose), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=900)


def conveyor_json(compose: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    out = conveyor(compose, *args, "--json", env=env)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
