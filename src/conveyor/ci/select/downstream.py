"""Downstream pipelines as GitLab creates them, as data: the predefined variables of a pipeline
a trigger job creates, the variables the trigger job passes on, its limits, and the status the
trigger job takes from its downstream pipeline.

- A child pipeline runs in the same project, ref and commit as its parent, with
  `CI_PIPELINE_SOURCE=parent_pipeline`; a multi-project pipeline (source `pipeline`) gets the
  predefined variables of its own project.
- A trigger job passes its YAML variables (top-level ones it inherits, its own, its matrix and
  rule values), expanded in its own context, unless `forward:yaml_variables: false`; with
  `forward:pipeline_variables: true` also the pipeline's own variables (which win a name both
  have). Downstream they rank as pipeline variables, above the child's YAML.
- Without `strategy` the trigger job succeeds once the pipeline is created; `depend` makes it
  succeed or fail with the pipeline; `mirror` copies the pipeline's status.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from conveyor.model.pipeline import TriggerSpec

# GitLab: "Parent and child pipelines have a maximum depth of two levels of child pipelines."
MAX_CHILD_DEPTH = 2
# GitLab's default limit of pipelines in one hierarchy (a parent and all its downstreams).
MAX_HIERARCHY_SIZE = 1000
# Failure reasons GitLab gives a trigger job whose downstream pipeline is not created.
CREATION_FAILED = "downstream_pipeline_creation_failed"
PROJECT_NOT_FOUND = "downstream_bridge_project_not_found"
TOO_DEEP = "reached_max_descendant_pipelines_depth"
TOO_MANY = "reached_max_pipeline_hierarchy_size"

TriggerStatus = Literal["success", "failed", "canceled", "skipped", "manual"]
_MIRRORED: dict[str, TriggerStatus] = {
    "failed": "failed",
    "canceled": "canceled",
    "skipped": "skipped",
    "manual": "manual",
}
# Predefined variables that belong to one pipeline and are not copied to its child.
_OWN = frozenset({"CI_PIPELINE_NAME"})


def child_predefined(
    parent: Mapping[str, str], pipeline_id: int, created_at: datetime | None = None
) -> dict[str, str]:
    """A child pipeline's predefined variables: its parent's (same project, ref, commit,
    merge request) with its own pipeline id, URL and creation time, and
    `CI_PIPELINE_SOURCE=parent_pipeline`."""
    out = {k: v for k, v in parent.items() if k not in _OWN}
    created = (created_at or datetime.now(UTC)).astimezone(UTC)
    out |= {
        "CI_PIPELINE_ID": str(pipeline_id),
        "CI_PIPELINE_IID": str(pipeline_id),
        "CI_PIPELINE_SOURCE": "parent_pipeline",
        "CI_PIPELINE_URL": f"{parent.get('CI_PROJECT_URL', '')}/-/pipelines/{pipeline_id}",
        "CI_PIPELINE_CREATED_AT": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "CI_PIPELINE_TRIGGERED": "true",
    }
    return out


def passed_variables(
    trigger: TriggerSpec, yaml: Mapping[str, str], pipeline: Mapping[str, str]
) -> dict[str, str]:
    """What the trigger job passes downstream: its YAML variables (`yaml`, already expanded)
    and the pipeline's own variables, as `forward` says; GitLab lists the pipeline variables
    last and keeps the last value of a name."""
    out: dict[str, str] = {}
    if trigger.forward_yaml_variables:
        out.update(yaml)
    if trigger.forward_pipeline_variables:
        out.update(pipeline)
    return out


def trigger_status(strategy: Literal["depend", "mirror"] | None, downstream: str) -> TriggerStatus:
    """The trigger job's status once its downstream pipeline ended with `downstream` (GitLab's
    pipeline status: success, failed, canceled, skipped, or manual when a manual job blocks
    it). Without a strategy the caller does not wait: the job succeeded at creation."""
    if strategy is None or downstream == "success":
        return "success"
    if strategy == "mirror":
        return _MIRRORED.get(downstream, "failed")
    # depend (Ci::Bridge#inherit_status_from_downstream!): failed, canceled and skipped drop
    # the trigger job; a blocked pipeline keeps it waiting, which a finished local run shows
    # as the trigger job waiting (manual) too.
    return "manual" if downstream == "manual" else "failed"
