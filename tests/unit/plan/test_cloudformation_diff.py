"""plan.cloudformation_diff: resources added, removed and changed, sections compared."""

from __future__ import annotations

from conveyor.plan.cloudformation_diff import diff_templates

BUCKET = {
    "Type": "AWS::S3::Bucket",
    "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
}
GROUP = {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {"MaxSize": "4"}}


def test_same_template_no_difference() -> None:
    t = {"Resources": {"B": BUCKET}, "Outputs": {"O": {"Value": "x"}}}
    assert diff_templates(t, t) == []


def test_added_removed_changed_and_sections() -> None:
    deployed = {"Resources": {"B": BUCKET, "G": GROUP}, "Outputs": {"O": {"Value": "x"}}}
    rendered = {
        "Resources": {"G": {**GROUP, "Properties": {"MaxSize": "6"}}, "New": BUCKET},
        "Outputs": {"O": {"Value": "y"}},
    }
    diffs = diff_templates(deployed, rendered)
    assert [(d.action, d.logical_id, d.resource_type) for d in diffs] == [
        ("removed", "B", "AWS::S3::Bucket"),
        ("changed", "G", "AWS::AutoScaling::AutoScalingGroup"),
        ("added", "New", "AWS::S3::Bucket"),
        ("changed", "Outputs", "(template section)"),
    ]
    group = diffs[1].lines
    assert group[:2] == ("--- deployed/G", "+++ rendered/G")
    assert '-    "MaxSize": "4"' in group and '+    "MaxSize": "6"' in group
