"""Which jobs offer Retry or Play on the pipeline and job pages: the rules of
`conveyor.ci.select.rerun` as a button needs them (the server checks them again when it acts,
and answers 409 with the reason for what changed since the page was drawn)."""

from __future__ import annotations

from typing import Literal

from conveyor.app.ci_views import JobView, PipelineView

RerunAction = Literal["retry", "play"]
_BUSY = frozenset({"running", "created", "pending"})
_RETRYABLE = frozenset({"failed", "canceled", "interrupted"})


def rerun_actions(pipeline: PipelineView) -> dict[int, RerunAction]:
    """Job id -> the action it offers: a failed, canceled or interrupted latest attempt is
    retried, a manual job played; none while the pipeline runs."""
    if pipeline.status in _BUSY:
        return {}
    latest: dict[str, JobView] = {}
    for j in pipeline.jobs:  # in id order: a later attempt replaces an earlier one
        latest[j.name] = j
    out: dict[int, RerunAction] = {}
    for j in latest.values():
        if j.status in _RETRYABLE:
            out[j.id] = "retry"
        elif j.status == "manual":
            out[j.id] = "play"
    return out
