"""Conveyor's rule files in a Prometheus rules directory (`<metrics>/prometheus/rules/`, loaded
by prometheus.yml's `rule_files` glob), kept in step with what `render.prometheus_rules`
renders, and Prometheus told to load them.

Each changed file is written beside its place as `<name>.candidate`, checked with `promtool
check rules` and only then renamed over the old one: a rejected file never reaches Prometheus
(the candidate is kept as `<name>.rejected` for its line numbers, and the error raised). Files
of Conveyor's naming that are no longer rendered (a project gone) are removed; any other file
in the directory is the user's and left alone. Prometheus does not watch rule files: a change
is loaded through its lifecycle API (`POST /-/reload`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from conveyor.host.validate import validate
from conveyor.render import prometheus_rules as rules
from conveyor.render.validator import Validator


@dataclass(frozen=True)
class RulesSync:
    written: list[str] = field(default_factory=list)  # file names changed or added
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)


def sync_rule_files(
    directory: Path,
    files: Mapping[str, str],
    *,
    validator: Validator | None = rules.VALIDATOR,
    program: str | None = None,
) -> RulesSync:
    """Make the Conveyor-owned files of `directory` exactly `files` (name -> text). Raises
    ValidationFailed (nothing of that file changed) when promtool rejects one; the files
    checked before it stay written. `validator` None skips the check (tests of the writing)."""
    directory.mkdir(parents=True, exist_ok=True)
    result = RulesSync()
    for name, text in sorted(files.items()):
        target = directory / name
        with contextlib.suppress(FileNotFoundError):
            if target.read_text() == text:
                continue
        candidate = directory / f"{name}.candidate"
        candidate.write_text(text)
        if validator is not None:
            try:
                validate(validator, candidate, program=program)
            except Exception:
                os.replace(candidate, directory / f"{name}.rejected")
                raise
        os.replace(candidate, target)
        with contextlib.suppress(FileNotFoundError):
            (directory / f"{name}.rejected").unlink()
        result.written.append(name)
    for path in sorted(directory.iterdir()):
        if rules.owned(path.name) and path.name not in files:
            path.unlink()
            result.removed.append(path.name)
    return result


def reload_prometheus(url: str, timeout: float = 10.0) -> bool:
    """Ask Prometheus at `url` to load its configuration and rule files again; False when it
    does not answer (it loads them when it starts) or refuses."""
    try:
        answer = requests.post(f"{url.rstrip('/')}/-/reload", timeout=timeout)
    except requests.RequestException:
        return False
    return answer.status_code == 200
