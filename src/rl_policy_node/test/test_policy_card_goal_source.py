"""The card's goal source: grid_waypoint cards round-trip, goal cards read as before."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from rl_policy_node_test_support import LinearTanhPolicy, small_card

from hybrid_fallback.nav_grid import NavGridConfig
from rl_policy_node.observation import ObservationBuilder, ScanInput
from rl_policy_node.policy_card import CARD_FILENAME, GoalSpec, PolicyCard, PolicyCardError
from rl_policy_node.policy_inputs import OdomSample, ScanSample
from rl_policy_node.policy_loader import PolicyCardInvalidError, load_policy
from rl_policy_node.policy_runtime import PolicyController
from rl_policy_node.policy_slots import prepare_policy

GRID = NavGridConfig(resolution=0.05, inflation_radius=0.2, proximity_radius=0.5)


def waypoint_card(**goal_changes):
    card = small_card()
    goal = GoalSpec(5.0, "grid_waypoint", lookahead=0.7, replan_period=0.5, grid=GRID)
    goal = dataclasses.replace(goal, **goal_changes)
    return card.with_updates(observation=dataclasses.replace(card.observation, goal=goal))


def card_data(card):
    return json.loads(card.to_json())


def test_a_grid_waypoint_card_round_trips():
    card = waypoint_card()
    data = card_data(card)
    goal = data["observation"]["goal"]
    assert goal["source"] == "grid_waypoint" and goal["lookahead"] == 0.7
    assert goal["replan_period"] == 0.5
    assert goal["grid"] == dataclasses.asdict(GRID)
    back = PolicyCard.from_json(card.to_json())
    assert back == card and back.observation.goal.grid == GRID
    assert type(back.observation.goal.grid.clear_beams) is int


def test_a_goal_card_writes_and_reads_as_before():
    card = small_card()
    assert card.observation.goal.source == "goal"
    assert card_data(card)["observation"]["goal"] == {"distance_cap": 5.0}
    assert PolicyCard.from_json(card.to_json()).observation.goal == GoalSpec(distance_cap=5.0)
    data = card_data(card)
    data["observation"]["goal"]["source"] = "goal"  # explicit default: same card
    assert PolicyCard.from_json(json.dumps(data)) == card


def test_a_card_written_before_route_hysteresis_keeps_its_routes_as_trained():
    data = card_data(waypoint_card())
    for name in ("route_hysteresis", "route_tolerance", "clear_radius"):
        del data["observation"]["goal"]["grid"][name]
    grid = PolicyCard.from_json(json.dumps(data)).observation.goal.grid
    assert grid.route_hysteresis == 0.0 and grid.route_tolerance == 0.0
    assert grid.clear_radius > GRID.resolution * 2**0.5  # any beam through a cell clears it
    assert grid.inflation_radius == GRID.inflation_radius  # the named fields as written
    assert GRID.route_hysteresis > 0.0  # a card written now records today's default
    assert GRID.clear_radius < GRID.resolution


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: g.update(source="waypoint"), r"observation\.goal\.source: must be one of"),
        (lambda g: g.pop("lookahead"), r"observation\.goal\.lookahead: missing"),
        (lambda g: g.update(replan_period=0), r"observation\.goal\.replan_period: must be"),
        (lambda g: g["grid"].pop("size"), r"observation\.goal\.grid\.size: missing"),
        (lambda g: g["grid"].update(extra=1), r"observation\.goal\.grid: unknown field"),
        (lambda g: g["grid"].update(clear_beams=1.5), r"grid\.clear_beams: must be an integer"),
        (lambda g: g["grid"].update(proximity_radius=0.1), r"observation\.goal\.grid: need"),
        (lambda g: g.update(source="goal"), r"observation\.goal\.lookahead: only with"),
    ],
)
def test_bad_goal_sources_are_refused_by_name(change, message):
    data = card_data(waypoint_card())
    change(data["observation"]["goal"])
    with pytest.raises(PolicyCardError, match=message):
        PolicyCard.from_json(json.dumps(data))


def test_a_file_with_an_unknown_goal_source_is_refused(tmp_path):
    data = card_data(small_card())
    data["observation"]["goal"]["source"] = "lidar_magic"
    size = small_card().observation.size
    module = torch.jit.trace(LinearTanhPolicy(size), torch.zeros(1, size))
    path = tmp_path / "unknown_source.pt"
    torch.jit.save(module, str(path), _extra_files={CARD_FILENAME: json.dumps(data)})
    with pytest.raises(PolicyCardInvalidError, match="observation.goal.source"):
        load_policy(path)


def test_a_raw_goal_policy_file_sees_the_goal_itself(workspace_root):
    # weak_policy.pt was written before goal sources existed: its card has none.
    path = workspace_root / "models" / "weak_policy.pt"
    policy = load_policy(path)
    assert policy.card.observation.goal == GoalSpec(distance_cap=5.0)
    # The card reads and writes back exactly as stored (no goal-source keys added).
    assert json.loads(policy.card.to_json()) == json.loads(policy.card_text)
    slot = prepare_policy(path, "weak_policy.pt", (0.22, 2.0))  # the default robot's limits
    assert slot.goal_source is None
    scan = ScanInput(
        1.0 + 0.5 * np.sin(np.arange(BEAMS) * 0.1), -math.pi, 2 * math.pi / BEAMS, 0.12, 3.5
    )
    controller = controller_on(slot, scan)
    assert controller.step(NOW).active
    builder = ObservationBuilder(policy.card.observation)
    expected = builder.build(scan, POSE, VELOCITY, GOAL, (0.0, 0.0))
    np.testing.assert_array_equal(controller._last_observation, expected)
    # The goal terms: distance to the goal itself (capped at 5 m, scaled) and its bearing.
    sectors = policy.card.observation.scan.sectors
    np.testing.assert_allclose(
        controller._last_observation[sectors : sectors + 3], goal_terms(GOAL, 5.0), atol=1e-6
    )


def test_the_shipped_policy_sees_a_waypoint_down_the_grid_path(workspace_root):
    path = workspace_root / "models" / "nav_policy.pt"
    policy = load_policy(path)
    goal = policy.card.observation.goal
    assert goal.source == "grid_waypoint" and goal.grid is not None
    assert json.loads(policy.card.to_json()) == json.loads(policy.card_text)
    slot = prepare_policy(path, "nav_policy.pt", (0.22, 2.0))
    assert slot.goal_source is not None
    # Nothing within range: the policy sees a point about `lookahead` m down the grid
    # path toward the goal (an 8-connected path, so within 45 degrees of the goal's
    # bearing), not the goal 2.7 m away.
    scan = ScanInput(np.full(BEAMS, 3.5), -math.pi, 2 * math.pi / BEAMS, 0.12, 3.5)
    controller = controller_on(slot, scan)
    assert controller.step(NOW).active
    sectors = policy.card.observation.scan.sectors
    distance, cos_bearing, sin_bearing = controller._last_observation[sectors : sectors + 3]
    cells = 2 * goal.grid.resolution
    assert abs(distance * goal.distance_cap - goal.lookahead) <= cells
    _, goal_cos, goal_sin = goal_terms(GOAL, goal.distance_cap)
    assert cos_bearing * goal_cos + sin_bearing * goal_sin >= math.cos(math.radians(45))


BEAMS = 360
POSE, VELOCITY, GOAL = (0.5, -0.2, 0.3), (0.1, 0.2), (3.0, 1.0)
NOW = 100_000_000_000


def controller_on(slot, scan: ScanInput) -> PolicyController:
    controller = PolicyController()
    controller.install(slot)
    controller.scan = ScanSample(scan, NOW, NOW)
    controller.odom = OdomSample(POSE, VELOCITY, NOW, NOW)
    controller.set_goal(*GOAL)
    return controller


def goal_terms(point: tuple[float, float], distance_cap: float) -> list[float]:
    """Distance (capped, scaled) to `point` from POSE and cos/sin of its bearing."""
    dx, dy = point[0] - POSE[0], point[1] - POSE[1]
    angle = math.atan2(dy, dx) - POSE[2]
    return [min(math.hypot(dx, dy), distance_cap) / distance_cap, math.cos(angle), math.sin(angle)]
