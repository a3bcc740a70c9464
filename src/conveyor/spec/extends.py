"""`extends`: a service written as another service (of this file or another) plus changes.

As Compose does it: the base service, its own `extends` resolved first, is merged with the
extending one by the merge rules (`spec.merge`: the extending service wins, lists add up);
a base from another file reads its relative paths from that file's directory; a chain that
comes back to itself is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.errors import SpecError
from conveyor.spec.context import shown
from conveyor.spec.merge import Loc, Located, merge_service
from conveyor.spec.sources import load_source, rebase_service
from conveyor.spec.values import suggest
from conveyor.spec.yamlpos import YamlPath, dotted


def apply_extends(
    doc: Located, path: Path, file: str, paths_dir: Path, env: Mapping[str, str]
) -> Located:
    """`doc` (the file at `path`, shown as `file`) with every `extends` resolved. Relative
    paths of `doc` are read from `paths_dir`; bases from other files are moved there."""
    services = doc.data.get("services") if isinstance(doc.data, dict) else None
    if not isinstance(services, dict):
        return doc
    if not any(isinstance(raw, dict) and "extends" in raw for raw in services.values()):
        return doc
    resolver = _Resolver(env, {})
    return resolver.file(doc, path, file, paths_dir)


@dataclass
class _File:
    path: Path
    file: str
    paths_dir: Path
    services: dict[str, Any]
    locs: dict[Any, Loc]
    done: set[str] = field(default_factory=set)


@dataclass
class _Resolver:
    env: Mapping[str, str]
    loaded: dict[Path, _File]  # other files, loaded once each

    def file(self, doc: Located, path: Path, file: str, paths_dir: Path) -> Located:
        services = dict(doc.data["services"])
        service_locs = doc.loc.kid("services")
        state = _File(path, file, paths_dir, services, dict(service_locs.kids))
        for name in list(services):
            self.service(state, name, ())
        data = {**doc.data, "services": state.services}
        kids = {
            **doc.loc.kids,
            "services": Loc(service_locs.file, service_locs.line, None, state.locs),
        }
        return Located(data, Loc(doc.loc.file, doc.loc.line, doc.loc.tag, kids))

    def service(self, state: _File, name: str, chain: tuple[tuple[Path, str], ...]) -> None:
        """Resolve `name`'s extends in place (in `state`), once."""
        if name in state.done:
            return
        here: YamlPath = ("services", name)
        link = (state.path, name)
        if link in chain:
            names = [n for _, n in chain[chain.index(link) :]] + [name]
            raise self._error(state, (*here, "extends"), "extends loops: " + " -> ".join(names))
        raw = state.services.get(name)
        if not isinstance(raw, dict) or "extends" not in raw:
            state.done.add(name)
            return
        written = raw["extends"]
        ref = written if isinstance(written, str) else str(written.get("service"))
        other = None if isinstance(written, str) else written.get("file")
        at: YamlPath = (
            (*here, "extends") if isinstance(written, str) else (*here, "extends", "service")
        )
        if other is None:
            base_state = state
            if ref not in state.services:
                hint = suggest(ref, [s for s in state.services if s != name])
                raise self._error(state, at, f"extends unknown service '{ref}'{hint}")
        else:
            base_state = self._other(state, str(other), (*here, "extends", "file"))
            if ref not in base_state.services:
                hint = suggest(ref, base_state.services)
                message = f"service '{ref}' not found in '{base_state.file}'{hint}"
                raise self._error(state, at, message)
        self.service(base_state, ref, (*chain, link))
        base = rebase_service(base_state.services[ref], base_state.paths_dir, state.paths_dir)
        own = {key: value for key, value in raw.items() if key != "extends"}
        own_loc = state.locs.get(name) or Loc(state.file, 1)
        own_kids = {key: kid for key, kid in own_loc.kids.items() if key != "extends"}
        base_loc = base_state.locs.get(ref) or Loc(base_state.file, 1)
        merged = merge_service(
            name,
            Located(base, base_loc),
            Located(own, Loc(own_loc.file, own_loc.line, None, own_kids)),
        )
        state.services[name] = merged.data
        # The service is still where the extending file defines it.
        state.locs[name] = Loc(own_loc.file, own_loc.line, None, merged.loc.kids)
        state.done.add(name)

    def _other(self, state: _File, written: str, at: YamlPath) -> _File:
        path = (
            Path(state.path.parent, written).resolve()
            if not Path(written).is_absolute()
            else Path(written)
        )
        known = self.loaded.get(path)
        if known is not None:
            return known
        if not path.is_file():
            raise self._error(state, at, f"file '{written}' not found")
        file = shown(state.file, written)
        doc = load_source(path, file, self.env)
        services = doc.data.get("services") if isinstance(doc.data, dict) else None
        loaded = _File(
            path,
            file,
            path.parent,
            dict(services) if isinstance(services, dict) else {},
            dict(doc.loc.kid("services").kids),
        )
        self.loaded[path] = loaded
        return loaded

    @staticmethod
    def _error(state: _File, at: YamlPath, message: str) -> SpecError:
        loc = state.locs.get(at[1]) if len(at) > 1 else None
        line = loc.line if loc is not None else 1
        file = loc.file if loc is not None else state.file
        for key in at[2:]:
            if loc is None or key not in loc.kids:
                break
            loc = loc.kids[key]
            file, line = loc.file, loc.line
        return SpecError(file, line, dotted(at), message)
