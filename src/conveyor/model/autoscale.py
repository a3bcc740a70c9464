"""x-conveyor.autoscale: how many replicas a service may scale between, and on what signal.

Pure data. Conveyor's own deploys keep `replicas` fixed; the Kubernetes rendering turns this
into a HorizontalPodAutoscaler (render.kubernetes.availability).
"""

from __future__ import annotations

from conveyor.model.frozen import Frozen


class Autoscale(Frozen):
    """Between `min` and `max` replicas; at least one target (the loader checks)."""

    min: int
    max: int
    cpu: int | None = None  # target average CPU utilisation, percent of the request
    rps: float | None = None  # target requests per second per replica
