"""CloudFormation through boto3: change sets, their execution with progress, a stack's
template and outputs (`conveyor aws plan|apply|diff`, docs/aws.md).

    cfn = CloudFormation.connect(region, endpoint_url)   # AWS_ENDPOINT_URL: moto, LocalStack
    plan = cfn.change_set(stack, template, parameters)   # CREATE or UPDATE, its changes
    state = cfn.execute(plan, on_event=print)            # waits; AwsError on a rollback
    cfn.discard(plan)                                    # plan only: leave nothing behind

Every boto3/botocore error comes out as AwsError with AWS's message.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.errors import AwsError
from conveyor.model.aws import ChangeSetPlan, StackChange, StackEvent, StackState
from conveyor.provision.aws.errors import aws_errors, message

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

# CloudFormation's words for "this stack changes nothing now".
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_GONE = "does not exist"
# the template makes roles, never named ones
CAPABILITIES: list[Literal["CAPABILITY_IAM"]] = ["CAPABILITY_IAM"]


class CloudFormation:
    def __init__(
        self, client: CloudFormationClient, poll: float = 3.0, timeout: float = 3600
    ) -> None:
        self.client = client
        self.poll = poll  # seconds between two reads while waiting
        self.timeout = timeout  # a stack creation with NAT gateways takes minutes

    @classmethod
    def connect(
        cls, region: str, endpoint_url: str | None = None, poll: float = 3.0
    ) -> CloudFormation:
        """A client for `region`; `endpoint_url` (else AWS_ENDPOINT_URL, read by boto3)
        points it elsewhere than AWS."""
        with aws_errors("connect"):
            session = boto3.session.Session(region_name=region)
            client = session.client(
                "cloudformation",
                endpoint_url=endpoint_url,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}),
            )
        return cls(client, poll=poll)

    # -- reading ---------------------------------------------------------------------------

    def stack(self, name: str) -> StackState | None:
        """The stack, None when there is none (or only an unexecuted change set's)."""
        state = self._read(name)
        gone = ("REVIEW_IN_PROGRESS", "DELETE_COMPLETE")  # no stack yet, or a deleted one
        return None if state is None or state.status in gone else state

    def _read(self, name: str) -> StackState | None:
        try:
            stacks = self.client.describe_stacks(StackName=name)["Stacks"]
        except ClientError as e:
            if _GONE in message(e):
                return None
            raise AwsError(f"describe stack {name}: {message(e)}") from None
        except BotoCoreError as e:
            raise AwsError(f"describe stack {name}: {e}") from None
        if not stacks:
            return None
        s = stacks[0]
        outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in s.get("Outputs", [])}
        return StackState(name=name, status=s["StackStatus"], outputs=outputs)

    def template(self, name: str) -> dict[str, Any]:
        """The template the stack was last deployed with, parsed."""
        with aws_errors(f"template of {name}"):
            body: Any = self.client.get_template(StackName=name, TemplateStage="Original")[
                "TemplateBody"
            ]
        if isinstance(body, str):
            try:
                parsed: dict[str, Any] = json.loads(body)
            except json.JSONDecodeError:
                raise AwsError(
                    f"stack {name}: its template is not JSON (YAML templates are not compared)"
                ) from None
            return parsed
        return dict(body)  # boto3 parses JSON bodies itself

    # -- change sets -----------------------------------------------------------------------

    def change_set(self, stack: str, template: str, parameters: Mapping[str, str]) -> ChangeSetPlan:
        """A change set of `template` for `stack`, once CloudFormation has computed it."""
        kind: Any = "UPDATE" if self.stack(stack) is not None else "CREATE"
        name = f"conveyor-{uuid.uuid4().hex[:12]}"
        with aws_errors(f"change set for {stack}"):
            made = self.client.create_change_set(
                StackName=stack,
                ChangeSetName=name,
                ChangeSetType=kind,
                TemplateBody=template_body(template),
                Parameters=[
                    {"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())
                ],
                Capabilities=CAPABILITIES,
            )
        arn = made["Id"]
        described = self._wait_change_set(stack, arn)
        changes = tuple(
            StackChange(
                action=c["ResourceChange"].get("Action", ""),
                logical_id=c["ResourceChange"].get("LogicalResourceId", ""),
                resource_type=c["ResourceChange"].get("ResourceType", ""),
                replacement=c["ResourceChange"].get("Replacement"),
            )
            for c in described.get("Changes", [])
            if c.get("Type") == "Resource"
        )
        return ChangeSetPlan(stack_name=stack, kind=kind, change_set=arn, changes=changes)

    def _wait_change_set(self, stack: str, arn: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            with aws_errors(f"change set for {stack}"):
                d: dict[str, Any] = dict(self.client.describe_change_set(ChangeSetName=arn))
            status = d["Status"]
            if status == "CREATE_COMPLETE":
                return d
            if status == "FAILED":
                reason = d.get("StatusReason") or ""
                if any(words in reason for words in _NO_CHANGES):
                    return {**d, "Changes": []}
                raise AwsError(f"stack {stack}: CloudFormation refused the change set: {reason}")
            if time.monotonic() > deadline:
                raise AwsError(f"stack {stack}: change set still {status} after {self.timeout}s")
            time.sleep(self.poll)

    def discard(self, plan: ChangeSetPlan) -> None:
        """Deletes the change set, and the empty stack a CREATE change set made."""
        with aws_errors(f"discard change set of {plan.stack_name}"):
            self.client.delete_change_set(ChangeSetName=plan.change_set)
            if plan.kind == "CREATE":
                self.client.delete_stack(StackName=plan.stack_name)

    def execute(
        self, plan: ChangeSetPlan, on_event: Callable[[StackEvent], None] | None = None
    ) -> StackState:
        """Executes the change set and waits until the stack settles, passing each new stack
        event to `on_event`. Raises AwsError naming the failed resources on a rollback."""
        stack = plan.stack_name
        seen = self._event_ids(stack) if plan.kind == "UPDATE" else set()
        with aws_errors(f"execute change set of {stack}"):
            self.client.execute_change_set(ChangeSetName=plan.change_set)
        deadline = time.monotonic() + self.timeout
        failures: list[StackEvent] = []
        while True:
            for event_id, event in self._new_events(stack, seen):
                seen.add(event_id)
                if event.status.endswith("FAILED"):
                    failures.append(event)
                if on_event is not None:
                    on_event(event)
            state = self._read(stack)
            # A CREATE change set's stack stays REVIEW_IN_PROGRESS until execution starts.
            status = state.status if state is not None else "DELETE_COMPLETE"
            if not status.endswith("IN_PROGRESS"):
                break
            if time.monotonic() > deadline:
                raise AwsError(f"stack {stack}: still {status} after {self.timeout}s")
            time.sleep(self.poll)
        if "ROLLBACK" in status or status.endswith("FAILED") or state is None:
            why = "; ".join(
                f"{e.logical_id} ({e.resource_type}): {e.reason or e.status}"
                for e in failures
                if e.logical_id != stack
            )
            raise AwsError(
                f"stack {stack}: {status}" + (f": {why}" if why else " (no resource said why)")
            )
        assert state is not None
        return state

    def _event_ids(self, stack: str) -> set[str]:
        return {event_id for event_id, _ in self._new_events(stack, set())}

    def _new_events(self, stack: str, seen: set[str]) -> list[tuple[str, StackEvent]]:
        """Events not in `seen`, oldest first (CloudFormation lists the newest first)."""
        with aws_errors(f"events of {stack}"):
            raw = self.client.describe_stack_events(StackName=stack)["StackEvents"]
        out = []
        for e in reversed(raw):
            if e["EventId"] in seen:
                continue
            out.append(
                (
                    e["EventId"],
                    StackEvent(
                        logical_id=e.get("LogicalResourceId", ""),
                        resource_type=e.get("ResourceType", ""),
                        status=e.get("ResourceStatus", ""),
                        reason=e.get("ResourceStatusReason"),
                    ),
                )
            )
        return out


# CloudFormation takes at most this many bytes inline (TemplateBody); more needs a TemplateURL
# (an S3 object), which `apply` does not upload yet.
TEMPLATE_BODY_LIMIT = 51_200


def template_body(template: str) -> str:
    """The template as sent: JSON without the indentation the rendered file keeps for people
    (the hosts' user data, with its playbook bundle, takes the indented file past the limit).
    Raises AwsError when even that is over CloudFormation's limit."""
    try:
        body = json.dumps(json.loads(template), separators=(",", ":"), sort_keys=True)
    except json.JSONDecodeError:
        body = template  # not JSON: sent as written, CloudFormation says what is wrong
    size = len(body.encode())
    if size > TEMPLATE_BODY_LIMIT:
        raise AwsError(
            f"the template is {size} bytes, over CloudFormation's {TEMPLATE_BODY_LIMIT} for a "
            "template sent inline (uploading it to S3 first is not built)"
        )
    return body
