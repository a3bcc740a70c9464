"""Every destination of a project's `logs:` section as one LogSink: `open_shipping` builds a
Shipper per destination (its format with its secrets, its buffer under the state directory,
its HTTP transport), `Shipping.write` hands each batch to all of them."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from conveyor.errors import ShipError
from conveyor.model.events import Reporter
from conveyor.model.log_shipping import Destination, ElasticsearchDestination, LogShipping
from conveyor.model.logs import LogRecord
from conveyor.observe.logs.ship.buffer import DiskBuffer
from conveyor.observe.logs.ship.elasticsearch import ElasticsearchFormat
from conveyor.observe.logs.ship.loki import LokiFormat
from conveyor.observe.logs.ship.shipper import Format, Shipper, ShipperOptions, ShipperStats
from conveyor.observe.logs.ship.sink import LogSink
from conveyor.observe.logs.ship.transport import HttpTransport, Transport

BUFFERS_DIR = "logs-ship"  # under the project's state directory: one directory per destination


class Shipping:
    """A LogSink that writes each batch to every shipper; a shipper whose buffer cannot take
    it does not keep the batch from the others (the error is raised after)."""

    def __init__(self, shippers: Sequence[Shipper]) -> None:
        self.shippers = tuple(shippers)

    def write(self, records: Sequence[LogRecord]) -> None:
        errors: list[ShipError] = []
        for shipper in self.shippers:
            try:
                shipper.write(records)
            except ShipError as exc:
                errors.append(exc)
        if errors:
            raise ShipError("; ".join(str(e) for e in errors))

    def start(self) -> None:
        for shipper in self.shippers:
            shipper.start()

    def stop(self, timeout: float = 10.0) -> None:
        for shipper in self.shippers:
            shipper.stop(timeout)

    def flush(self, timeout: float) -> bool:
        return all(shipper.flush(timeout) for shipper in self.shippers)

    def stats(self) -> list[ShipperStats]:
        return [shipper.stats() for shipper in self.shippers]


def _is_a_sink(shipping: Shipping) -> LogSink:
    return shipping  # mypy checks that Shipping is a LogSink


def open_shipping(
    spec: LogShipping,
    state_dir: Path,
    environ: Mapping[str, str],
    reporter: Reporter | None = None,
    options: ShipperOptions | None = None,
    transport: Transport | None = None,
) -> Shipping:
    """A Shipper per destination, not started. Raises ShipError when a secret's variable is
    unset or a buffer is held by another process (nothing is left open then)."""
    shippers: list[Shipper] = []
    try:
        for index, dest in enumerate(spec.ship):
            fmt = destination_format(dest, environ, index)
            buffer = DiskBuffer(state_dir / BUFFERS_DIR / dest.name, dest.buffer)
            shippers.append(
                Shipper(
                    fmt,
                    buffer,
                    transport or HttpTransport(dest.timeout),
                    reporter,
                    options,
                    random.Random(),  # noqa: S311 - jitter, not a secret
                )
            )
    except BaseException:
        for shipper in shippers:
            shipper.stop(0)
        raise
    return Shipping(shippers)


def destination_format(dest: Destination, environ: Mapping[str, str], index: int = 0) -> Format:
    """The destination's wire format with its secrets read from `environ`."""
    where = f"logs.ship[{index}].{dest.kind}"
    secrets: dict[str, str] = {}
    names = [("password_env", dest.password_env)]
    if isinstance(dest, ElasticsearchDestination):
        names.append(("api_key_env", dest.api_key_env))
    for field, variable in names:
        if variable is None:
            continue
        value = environ.get(variable)
        if not value:
            raise ShipError(
                f"{where}.{field}: the environment variable {variable} is not set (it holds "
                f"the {'API key' if field == 'api_key_env' else 'password'} for {dest.url}); "
                "set it in the environment of the agent or the server"
            )
        secrets[variable] = value
    if isinstance(dest, ElasticsearchDestination):
        return ElasticsearchFormat(dest, secrets)
    return LokiFormat(dest, secrets)
