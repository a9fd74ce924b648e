"""Live push is deployed only where it can work: the pusher posts to the public @connections
endpoint, so it needs subnets with a NAT route of its own (LivePushSubnetIds). Without them no part
of live push is created, and the stack says so; it never runs in the NAT-less PrivateSubnetIds."""

from __future__ import annotations

from typing import Any

from tests.component.infra.sam_template import conditions_for, created

NAT_SUBNETS = {"LivePushSubnetIds": ["subnet-0aaa1111", "subnet-0bbb2222"]}
LIVE_PUSH = {
    "WebSocketApi",
    "LiveIntegration",
    "LiveConnectRoute",
    "LiveDisconnectRoute",
    "LiveDefaultRoute",
    "WebSocketStage",
    "LiveInvokePermission",
    "LiveConnectionsFunction",
    "LivePushFunction",
    "LiveConnectionsLogGroup",
    "LivePushLogGroup",
    "Outputs.WebSocketUrl",
}


def test_without_its_subnets_no_part_of_live_push_is_created(template: dict[str, Any]) -> None:
    assert template["Parameters"]["LivePushSubnetIds"]["Default"] == ""
    assert not conditions_for(template, {})["EnableLivePush"]
    assert not created(template, {}) & LIVE_PUSH
    # Anything else naming a live resource (alarms, outputs) goes with it.
    for name, resource in template["Resources"].items():
        if any(live in str(resource) for live in LIVE_PUSH - {"Outputs.WebSocketUrl"}):
            assert resource.get("Condition") == "EnableLivePush" or name in LIVE_PUSH, name


def test_the_stack_says_whether_live_push_is_on(template: dict[str, Any]) -> None:
    status = template["Outputs"]["LivePush"]["Value"]["Fn::If"]
    assert status[0] == "EnableLivePush"
    assert status[1].startswith("enabled")
    assert status[2].startswith("disabled")
    assert "LivePushSubnetIds" in status[2]


def test_with_nat_subnets_the_pusher_runs_there_and_only_there(template: dict[str, Any]) -> None:
    assert conditions_for(template, NAT_SUBNETS)["EnableLivePush"]
    assert created(template, NAT_SUBNETS) >= LIVE_PUSH
    pusher = template["Resources"]["LivePushFunction"]["Properties"]
    assert pusher["VpcConfig"]["SubnetIds"] == {"Ref": "LivePushSubnetIds"}
    assert "PrivateSubnetIds" not in str(pusher)


def test_every_resource_sam_makes_for_live_push_is_conditional(translated: dict[str, Any]) -> None:
    """Roles, schedule rules, permissions, invoke configs (and aliases, versions) generated from the
    two live functions carry the condition too."""
    generated = {
        name: resource
        for name, resource in translated["Resources"].items()
        if name.startswith(("LivePushFunction", "LiveConnectionsFunction"))
    }
    assert any(resource["Type"] == "AWS::Events::Rule" for resource in generated.values())
    assert {resource.get("Condition") for resource in generated.values()} == {"EnableLivePush"}
