"""A reader (the API, the dashboard) loading the served project while a sync turns the work
tree to another commit waits for the checkout: git rewrites the files in place, and a read in
between found no compose.yaml (HTTP 500 on GET /environments/{env}, seen in CI)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from conveyor.app.controller import Controller
from conveyor.spec.conveyor_file import parse_conveyor

COMPOSE = "services:\n  web:\n    image: example/web:1\n"


def test_the_served_project_is_read_whole_while_a_checkout_rewrites_the_tree(
    tmp_path: Path,
) -> None:
    c = Controller(
        str(tmp_path / "app.git"), tmp_path / "data", {}, executor="shell", registry=False
    )
    c.config = parse_conveyor("environments:\n  staging:\n    branch: main\n")
    work = c._work_tree("staging")
    work.mkdir(parents=True)
    (work / "compose.yaml").write_text(COMPOSE)
    c._update("staging", deployed="a" * 40)
    gone, reading = threading.Event(), threading.Event()

    def move_checkout(dest: Path, sha: str) -> Path:
        (dest / "compose.yaml").unlink()  # what git does to a file the new commit changes
        gone.set()
        reading.wait(5)
        time.sleep(0.3)  # the reader, unlocked, would look now
        (dest / "compose.yaml").write_text(COMPOSE)
        return dest

    c.source.move_checkout = move_checkout  # type: ignore[method-assign]
    checkout = threading.Thread(target=c._checkout, args=("staging", "b" * 40))
    checkout.start()
    assert gone.wait(5)
    reading.set()
    project = c._served_project("staging")
    checkout.join()
    assert project is not None
    assert list(project.stack().services) == ["web"]
