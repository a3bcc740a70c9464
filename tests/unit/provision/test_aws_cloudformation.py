"""provision.aws.CloudFormation's waiting and error reporting, with a stand-in for the boto3
client that plays back what CloudFormation answers (moto's server never rolls a resource back:
tests/integration/aws covers the rest against it)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conveyor.errors import AwsError
from conveyor.model.aws import ChangeSetPlan, StackEvent
from conveyor.provision.aws.cloudformation import (
    TEMPLATE_BODY_LIMIT,
    CloudFormation,
    template_body,
)


class Recorded:
    """Answers describe_stacks from `statuses` in turn; events grow as the stack moves."""

    def __init__(self, statuses: list[str], events: list[list[dict[str, Any]]]) -> None:
        self.statuses = statuses
        self.events = events
        self.calls: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {
            "Stacks": [{"StackStatus": status, "Outputs": [{"OutputKey": "K", "OutputValue": "v"}]}]
        }

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        batch = self.events.pop(0) if len(self.events) > 1 else self.events[0]
        return {"StackEvents": list(reversed(batch))}  # newest first, as AWS lists them

    def execute_change_set(self, ChangeSetName: str) -> None:
        self.calls.append(f"execute {ChangeSetName}")

    def describe_change_set(self, ChangeSetName: str) -> dict[str, Any]:
        return {
            "Status": "FAILED",
            "StatusReason": "The submitted information didn't contain changes. Submit "
            "different information to create a change set.",
        }

    def create_change_set(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(f"create {kwargs['ChangeSetType']}")
        return {"Id": "arn:cs"}


def event(n: int, logical: str, status: str, reason: str | None = None) -> dict[str, Any]:
    e = {
        "EventId": str(n),
        "LogicalResourceId": logical,
        "ResourceType": "AWS::X::Y",
        "ResourceStatus": status,
    }
    return {**e, "ResourceStatusReason": reason} if reason else e


PLAN = ChangeSetPlan(stack_name="s", kind="CREATE", change_set="arn:cs")


def test_rollback_names_each_failed_resource_and_why() -> None:
    events = [
        [event(1, "s", "CREATE_IN_PROGRESS")],
        [
            event(1, "s", "CREATE_IN_PROGRESS"),
            event(2, "Bucket", "CREATE_FAILED", "Bucket name already exists"),
            event(3, "s", "ROLLBACK_IN_PROGRESS"),
        ],
        [
            event(1, "s", "CREATE_IN_PROGRESS"),
            event(2, "Bucket", "CREATE_FAILED", "Bucket name already exists"),
            event(3, "s", "ROLLBACK_IN_PROGRESS"),
            event(4, "s", "ROLLBACK_COMPLETE"),
        ],
    ]
    client = Recorded(["CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"], events)
    seen: list[StackEvent] = []
    with pytest.raises(AwsError) as info:
        CloudFormation(client, poll=0).execute(PLAN, seen.append)  # type: ignore[arg-type]
    assert str(info.value) == (
        "stack s: ROLLBACK_COMPLETE: Bucket (AWS::X::Y): Bucket name already exists"
    )
    # every event once, oldest first
    assert [(e.logical_id, e.status) for e in seen] == [
        ("s", "CREATE_IN_PROGRESS"),
        ("Bucket", "CREATE_FAILED"),
        ("s", "ROLLBACK_IN_PROGRESS"),
        ("s", "ROLLBACK_COMPLETE"),
    ]


def test_success_returns_the_outputs() -> None:
    client = Recorded(["CREATE_COMPLETE"], [[event(1, "s", "CREATE_COMPLETE")]])
    state = CloudFormation(client, poll=0).execute(PLAN)  # type: ignore[arg-type]
    assert (state.status, state.outputs) == ("CREATE_COMPLETE", {"K": "v"})


def test_a_change_set_without_changes_is_an_empty_plan_not_an_error() -> None:
    client = Recorded(["UPDATE_COMPLETE"], [[]])
    plan = CloudFormation(client, poll=0).change_set("s", "{}", {})  # type: ignore[arg-type]
    assert (plan.kind, plan.changes) == ("UPDATE", ())
    assert client.calls == ["create UPDATE"]


def test_aws_errors_carry_aws_message() -> None:
    class Refusing(Recorded):
        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not allowed to describe"}},
                "DescribeStacks",
            )

    with pytest.raises(AwsError, match="describe stack s: not allowed to describe"):
        CloudFormation(Refusing(["x"], [[]]), poll=0).stack("s")  # type: ignore[arg-type]


def test_the_template_goes_inline_without_indentation_within_cloudformations_limit() -> None:
    indented = json.dumps({"Resources": {"A": {"Type": "T", "Properties": {"P": "x"}}}}, indent=2)
    assert template_body(indented) == '{"Resources":{"A":{"Properties":{"P":"x"},"Type":"T"}}}'
    too_big = json.dumps({"Description": "x" * TEMPLATE_BODY_LIMIT})
    with pytest.raises(AwsError, match="over CloudFormation's 51200"):
        template_body(too_big)
