"""Timeline events as terminal progress: the running step on a spinner line, each finished
step with its time, messages and notes dimmed, on stderr."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.status import Status

from conveyor.cli.output import err, esc
from conveyor.model.events import Event


class ProgressRenderer:
    def __init__(self, status: Status | None) -> None:
        self.status = status

    def __call__(self, e: Event) -> None:
        text = esc(e.message)
        match e.kind:
            case "step.started":
                if self.status is not None:
                    self.status.update(text)
            case "step.done":
                took = float(e.data.get("seconds", 0.0))
                err.print(f"  [green]✓[/] {text} [dim]{took:.1f}s[/]", highlight=False)
            case "step.failed":
                reason = esc(str(e.data.get("error", "")))
                err.print(f"  [red]✗[/] {text}: failed: {reason}", highlight=False)
            case "image.output":
                err.print(f"[dim]{esc(e.subject.service or '')}: {text}[/]", highlight=False)
            case "rollout.note":
                err.print(f"[dim]note: {text}[/]", highlight=False)
            case "rollout.message":
                err.print(f"[dim]{text}[/]", highlight=False)


@contextmanager
def progress(enabled: bool = True) -> Iterator[ProgressRenderer]:
    """A renderer to subscribe to a project's timeline while a command runs."""
    status: Status | None = err.status("") if enabled and err.is_terminal else None
    if status is not None:
        status.start()
    try:
        yield ProgressRenderer(status)
    finally:
        if status is not None:
            status.stop()
