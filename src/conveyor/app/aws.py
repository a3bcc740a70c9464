"""`conveyor aws render|plan|apply|diff`: the project's AWS infrastructure as a CloudFormation
template, and its deployment through change sets (docs/aws.md).

    stack = AwsStack(compose_files, conveyor_file, environ, cwd)
                                                  which stack, as the CLI's options name it
    inputs = aws_inputs(stack)                    settings + services
    render_files(inputs, out_dir)                 template.json + parameters.json
    aws_plan(inputs, endpoint_url)                the change set's changes (nothing kept)
    aws_apply(inputs, endpoint_url, on_event)     executes a change set, waits, the outputs
    aws_diff(inputs, endpoint_url)                deployed template vs rendered, per resource

The endpoint is AWS unless `endpoint_url` (or AWS_ENDPOINT_URL, which boto3 reads) points
elsewhere: the tests use moto's server on 127.0.0.1. Credentials come from boto3's usual
chain (environment, ~/.aws, instance role).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.app.project import find_compose_files
from conveyor.errors import AwsError
from conveyor.model.aws import (
    AwsFleet,
    AwsService,
    AwsSettings,
    ChangeSetPlan,
    ResourceDiff,
    StackEvent,
    StackState,
)
from conveyor.model.stack import Stack
from conveyor.plan.cloudformation_diff import diff_templates
from conveyor.provision.ansible.bundle import playbook_bundle
from conveyor.provision.aws.cloudformation import CloudFormation
from conveyor.render.aws_host import aws_fleet_ports, aws_host_inventory
from conveyor.render.cloudformation import aws_services, parameters_json, template_json
from conveyor.spec.aws import load_aws_settings
from conveyor.spec.compose import load_compose
from conveyor.spec.fleet import load_fleet_file

TEMPLATE_FILE = "template.json"
PARAMETERS_FILE = "parameters.json"

Connect = Callable[[str, str | None], CloudFormation]


@dataclass(frozen=True)
class AwsInputs:
    """What the template is rendered from, and the rendering."""

    settings: AwsSettings
    services: tuple[AwsService, ...]
    stack_name: str
    template: str  # JSON text, byte-identical for the same inputs
    parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AwsStack:
    """Which stack a command is about, as every `conveyor aws` command names it: the
    project's compose files (the default stack name is the project's), conveyor.yaml's
    `aws:` section, and `region` / `stack_name` over the section's."""

    compose_files: Sequence[Path]
    conveyor_file: Path  # relative to `cwd`, named so in errors
    environ: Mapping[str, str]
    cwd: Path
    project_name: str | None = None
    region: str | None = None
    stack_name: str | None = None

    def settings(self) -> AwsSettings:
        """conveyor.yaml's `aws:` section, `region` over its own. Raises SpecError(s)."""
        settings = load_aws_settings(self.cwd / self.conveyor_file, str(self.conveyor_file))
        if self.region is None:
            return settings
        return settings.model_copy(update={"region": self.region})

    def compose(self) -> Stack:
        """The project's stack, read as the other commands read it. Raises SpecError(s),
        NoComposeFile."""
        files = find_compose_files(self.compose_files, self.environ, self.cwd)
        return load_compose(files, self.project_name, self.environ, cwd=self.cwd).stack

    def name(self, settings: AwsSettings, stack: Stack | None = None) -> str:
        """The stack's name: `stack_name`, else aws.stack_name, else the default for the
        project (the compose files are read only then, unless `stack` is given)."""
        given = self.stack_name or settings.stack_name
        return given or stack_name_of(settings, (stack or self.compose()).project)


def stack_name_of(settings: AwsSettings, project: str) -> str:
    """The stack `conveyor aws apply` makes for `project` (aws.stack_name over the default)."""
    return settings.stack_name or f"conveyor-{project}"


def aws_inputs(where: AwsStack) -> AwsInputs:
    """The settings (conveyor.yaml's `aws:`, `region`/`stack_name` over them) and the
    published services of the project's compose files. Raises SpecError(s), NoComposeFile,
    AwsError. The hosts' user data carries the shipped playbook and this project's host
    inventory (published ports, `checks:` for NRPE): each host runs the same roles as
    `conveyor provision`, locally."""
    settings = where.settings()
    stack = where.compose()
    services = aws_services(stack)
    name = where.name(settings, stack)
    parameters = {
        p["ParameterKey"]: p["ParameterValue"] for p in json.loads(parameters_json(settings))
    }
    return AwsInputs(
        settings=settings,
        services=services,
        stack_name=name,
        template=template_json(
            settings, services, aws_fleet(settings, stack, where.cwd / where.conveyor_file)
        ),
        parameters=parameters,
    )


def aws_fleet(settings: AwsSettings, stack: Stack, conveyor_file: Path) -> AwsFleet:
    """How the group's hosts join the fleet: the ports between them and the playbook bundle
    (with the inventory render.aws_host gives a host of this project)."""
    checks = load_fleet_file(conveyor_file).checks
    inventory = aws_host_inventory(settings, stack, checks)
    return AwsFleet(ports=aws_fleet_ports(stack), playbook=playbook_bundle(inventory))


@dataclass(frozen=True)
class RenderedFiles:
    template: Path
    parameters: Path


def render_files(inputs: AwsInputs, out: Path) -> RenderedFiles:
    """Writes the template and its parameters file into `out` (made when missing)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        template = out / TEMPLATE_FILE
        template.write_text(inputs.template, encoding="utf-8")
        parameters = out / PARAMETERS_FILE
        parameters.write_text(parameters_json(inputs.settings), encoding="utf-8")
    except OSError as e:
        raise AwsError(f"cannot write the template into {out}: {e}") from None
    return RenderedFiles(template=template, parameters=parameters)


def _connect(region: str, endpoint_url: str | None) -> CloudFormation:
    return CloudFormation.connect(region, endpoint_url)


def aws_plan(
    inputs: AwsInputs, endpoint_url: str | None = None, connect: Connect = _connect
) -> ChangeSetPlan:
    """The changes a change set of the rendered template would make; the change set (and,
    for a stack not created yet, its empty stack) is deleted again: planning changes
    nothing."""
    cfn = connect(inputs.settings.region, endpoint_url)
    plan = cfn.change_set(inputs.stack_name, inputs.template, inputs.parameters)
    cfn.discard(plan)
    return plan


@dataclass(frozen=True)
class Applied:
    plan: ChangeSetPlan
    state: StackState
    executed: bool  # False: the change set held no change, nothing was executed


def aws_apply(
    inputs: AwsInputs,
    endpoint_url: str | None = None,
    on_event: Callable[[StackEvent], None] | None = None,
    connect: Connect = _connect,
) -> Applied:
    """Creates a change set of the rendered template and executes it, waiting until the
    stack settles (`on_event` sees each stack event). Raises AwsError naming the resources
    that failed when CloudFormation rolled back."""
    cfn = connect(inputs.settings.region, endpoint_url)
    plan = cfn.change_set(inputs.stack_name, inputs.template, inputs.parameters)
    if not plan.changes and plan.kind == "UPDATE":
        cfn.discard(plan)
        state = cfn.stack(inputs.stack_name)
        assert state is not None  # an UPDATE change set means the stack exists
        return Applied(plan=plan, state=state, executed=False)
    state = cfn.execute(plan, on_event)
    return Applied(plan=plan, state=state, executed=True)


def aws_diff(
    inputs: AwsInputs, endpoint_url: str | None = None, connect: Connect = _connect
) -> list[ResourceDiff]:
    """The deployed stack's template against the rendered one, per resource. Raises AwsError
    when the stack does not exist."""
    cfn = connect(inputs.settings.region, endpoint_url)
    if cfn.stack(inputs.stack_name) is None:
        raise AwsError(
            f"stack {inputs.stack_name} does not exist in {inputs.settings.region}: "
            "`conveyor aws plan` shows what `apply` would create"
        )
    return diff_templates(cfn.template(inputs.stack_name), json.loads(inputs.template))
