"""Docker SDK and transport errors as `RuntimeAdapterError`s that name what Conveyor was doing
and, when the engine cannot be reached, what to do. Shared by the runtime's Docker adapters
(kept apart from them so that a light adapter does not import a heavy one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests

from conveyor.errors import EngineUnreachable, RuntimeAdapterError

DEFAULT_HOST = "unix:///var/run/docker.sock"


def explain(error: Exception) -> str:
    """The engine's own explanation of an API error, else the error's text."""
    explanation = getattr(error, "explanation", None)
    return str(explanation or error)


def unreachable(error: Exception) -> str:
    host = os.environ.get("DOCKER_HOST", DEFAULT_HOST)
    return (
        f"cannot reach the Docker Engine at {host}: is dockerd running? "
        f"`conveyor bootstrap` starts it ({error})"
    )


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Docker SDK and transport errors → RuntimeAdapterError naming what Conveyor was doing."""
    try:
        yield
    except docker.errors.APIError as e:
        raise RuntimeAdapterError(f"{action}: {explain(e)}") from e
    except requests.exceptions.ConnectionError as e:
        raise EngineUnreachable(unreachable(e)) from e
    except docker.errors.DockerException as e:
        raise RuntimeAdapterError(f"{action}: {e}") from e
