"""The project's environment row (which release runs, which ran before, which a rollout is
moving to), the services HAProxy has frontends for, the ports allocated to them, and the slots
of service addresses."""

from __future__ import annotations

from typing import Literal

from conveyor.store.database import Database

Pointer = Literal["current_release", "previous_release", "target_release"]
Purpose = Literal["frontend", "stats"]


class EnvironmentRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def name(self) -> str:
        return str(self._db.scalar("SELECT name FROM environment WHERE id = 1"))

    def rename(self, name: str) -> None:
        self._db.execute("UPDATE environment SET name = ? WHERE id = 1", (name,))

    def pointer(self, which: Pointer) -> int | None:
        v = self._db.scalar(f"SELECT {which} FROM environment WHERE id = 1")  # noqa: S608 — a Literal
        return None if v is None else int(v)

    def set_pointer(self, which: Pointer, number: int | None) -> None:
        self._db.execute(f"UPDATE environment SET {which} = ? WHERE id = 1", (number,))  # noqa: S608 — a Literal

    def make_current(self, number: int) -> None:
        """`number` becomes current; the release it replaces (if another) becomes previous,
        and no rollout is under way any more. One transaction: never half-moved."""
        with self._db.tx() as c:
            cur = c.execute("SELECT current_release FROM environment WHERE id = 1").fetchone()[0]
            if cur is not None and cur != number:
                c.execute("UPDATE environment SET previous_release = ? WHERE id = 1", (cur,))
            c.execute(
                "UPDATE environment SET current_release = ?, target_release = NULL WHERE id = 1",
                (number,),
            )

    # frontends HAProxy listens for now ----------------------------------------------------------

    def frontends(self) -> list[str]:
        return [str(r[0]) for r in self._db.all("SELECT service FROM frontends ORDER BY rowid")]

    def set_frontends(self, services: tuple[str, ...] | list[str]) -> None:
        with self._db.tx() as c:
            c.execute("DELETE FROM frontends")
            c.executemany("INSERT INTO frontends (service) VALUES (?)", [(s,) for s in services])


class PortRepository:
    """Stable ports: a routed service keeps its frontend port across releases and `down`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def frontend_ports(self) -> dict[str, int]:
        rows = self._db.all("SELECT service, port FROM port_allocations WHERE purpose = 'frontend'")
        return {str(r[0]): int(r[1]) for r in rows}

    def stats_port(self) -> int | None:
        v = self._db.scalar("SELECT port FROM port_allocations WHERE purpose = 'stats'")
        return None if v is None else int(v)

    def taken(self) -> set[int]:
        return {int(r[0]) for r in self._db.all("SELECT port FROM port_allocations")}

    def set_frontend(self, service: str, port: int) -> None:
        self._set("frontend", service, port)

    def set_stats(self, port: int) -> None:
        self._set("stats", "", port)

    def _set(self, purpose: Purpose, service: str, port: int) -> None:
        self._db.execute(
            "INSERT INTO port_allocations (purpose, service, port) VALUES (?, ?, ?) "
            "ON CONFLICT(purpose, service) DO UPDATE SET port = excluded.port",
            (purpose, service, port),
        )


class AddressSlotRepository:
    """Stable service addresses: a routed service on project networks keeps its slot (its IP's
    place in every network's static half) across releases and `down`, so the /etc/hosts lines
    of running replicas never go stale."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> dict[str, int]:
        return {
            str(r[0]): int(r[1]) for r in self._db.all("SELECT service, slot FROM address_slots")
        }

    def set(self, service: str, slot: int) -> None:
        self._db.execute(
            "INSERT INTO address_slots (service, slot) VALUES (?, ?) "
            "ON CONFLICT(service) DO UPDATE SET slot = excluded.slot",
            (service, slot),
        )
