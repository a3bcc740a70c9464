"""The long-running process: hosts controllers, each ticked on its interval until SIGTERM.

Today it hosts one controller, a project's reconciler (`conveyor agent`); the GitOps server
adds source, pipeline and promotion controllers to the same loop.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from conveyor.errors import ConveyorError, LockBusy
from conveyor.model.events import Reporter


class Controller(Protocol):
    name: str

    def tick(self) -> object: ...


@dataclass
class Hosted:
    controller: Controller
    interval: float
    next_at: float = 0.0


@dataclass
class ControllerHost:
    timeline: Reporter
    stop_event: threading.Event = field(default_factory=threading.Event)
    hosted: list[Hosted] = field(default_factory=list)

    def add(self, controller: Controller, interval: float) -> None:
        self.hosted.append(Hosted(controller, interval))

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> None:
        names = ", ".join(h.controller.name for h in self.hosted)
        self.timeline.emit("reconciler.started", f"running {names}")
        while not self.stop_event.is_set():
            now = time.monotonic()
            for h in self.hosted:
                if now >= h.next_at:
                    self._tick(h)
                    h.next_at = time.monotonic() + h.interval
            wait = min((h.next_at for h in self.hosted), default=now + 1.0) - time.monotonic()
            self.stop_event.wait(max(0.0, wait))
        self.timeline.emit("reconciler.stopped", "stopped")

    def _tick(self, h: Hosted) -> None:
        try:
            h.controller.tick()
        except LockBusy:
            pass  # a command is working on the project; look again next tick
        except ConveyorError as e:
            self.timeline.emit("reconciler.error", str(e), level="warning")
        except Exception as e:  # a bug must not stop the healing of everything else
            self.timeline.emit(
                "reconciler.error", f"{type(e).__name__}: {e}", level="error", data={"bug": True}
            )
