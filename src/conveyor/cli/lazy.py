"""Commands imported when they run, not when `conveyor` starts.

Importing every command's use cases costs over a second (pydantic models, the CI engine, the
log store...), paid by `--help`, `--version` and every shell-completion TAB. A lazy command is a
placeholder with its name and one-line help (enough for listings, completion of names and
did-you-mean); the first time it is resolved to run, parse or complete, its module is imported
and the real command takes over.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import typer
from typer import _click as click  # Typer's own copy of click: its groups hold these
from typer.core import TyperCommand, TyperGroup

COMPLETION_PARAMS = ("install_completion", "show_completion")


@dataclass(frozen=True)
class Lazy:
    """Where a command lives: `module:attr`, a Typer app (a group of commands) or a function
    (one command), and its one-line help for listings."""

    target: str
    help: str
    panel: str | None = None  # the heading `conveyor --help` lists it under

    def load(self, name: str) -> click.Command:
        module, _, attr = self.target.partition(":")
        found = getattr(importlib.import_module(module), attr)
        if isinstance(found, typer.Typer):
            command = typer.main.get_command(found)
            # completion is installed from the root command, not from each group
            command.params = [p for p in command.params if p.name not in COMPLETION_PARAMS]
            if not command.help:
                command.help = self.help
        else:
            single = typer.Typer(add_completion=False, rich_markup_mode="rich")
            single.command(name=name)(found)
            command = typer.main.get_command(single)
        command.name = name
        return command


class LazyCommand(TyperCommand):
    """Stands for a command until it is needed; then every context is the real command's."""

    def __init__(self, name: str, lazy: Lazy) -> None:
        super().__init__(name, help=lazy.help, short_help=lazy.help, rich_help_panel=lazy.panel)
        self._lazy = lazy
        self._real: click.Command | None = None

    def real(self) -> click.Command:
        if self._real is None:
            assert self.name is not None
            self._real = self._lazy.load(self.name)
        return self._real

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self.real().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        return self.real().invoke(ctx)


def lazy_group(commands: Mapping[str, Lazy], order: Sequence[str] = ()) -> type[TyperGroup]:
    """A TyperGroup class (for `typer.Typer(cls=...)`) that also holds these lazy commands and
    lists every command in `order` first (the rest as they were added)."""

    class Group(TyperGroup):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for name, lazy in commands.items():
                self.commands.setdefault(name, LazyCommand(name, lazy))

        def list_commands(self, ctx: click.Context) -> list[str]:
            first = [name for name in order if name in self.commands]
            return first + [name for name in self.commands if name not in first]

    return Group
