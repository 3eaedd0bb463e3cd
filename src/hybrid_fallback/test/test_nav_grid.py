import heapq
import math

import numpy as np
import pytest

from hybrid_fallback.dwa import ObservedSector
from hybrid_fallback.fallback import FallbackController, GuidanceConfig
from hybrid_fallback.nav_grid import NavGridConfig, NavigationGrid, cost_field


def reference_dijkstra(step_cost: np.ndarray, goal: tuple[int, int]) -> np.ndarray:
    height, width = step_cost.shape
    dist = np.full((height, width), np.inf)
    dist[goal] = 0.0
    queue = [(0.0, goal)]
    while queue:
        d, (i, j) = heapq.heappop(queue)
        if d > dist[i, j]:
            continue
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                ni, nj = i + di, j + dj
                if (di or dj) and 0 <= ni < height and 0 <= nj < width:
                    nd = d + 0.5 * math.hypot(di, dj) * (step_cost[i, j] + step_cost[ni, nj])
                    if nd < dist[ni, nj]:
                        dist[ni, nj] = nd
                        heapq.heappush(queue, (nd, (ni, nj)))
    return dist


@pytest.mark.parametrize("shape", [(1, 6), (6, 1), (7, 5), (23, 31)])
def test_cost_field_equals_dijkstra(shape):
    rng = np.random.default_rng(sum(shape))
    costs = np.where(rng.random(shape) < 0.3, 50.0, 1.0) * rng.uniform(0.5, 1.5, shape)
    goal = (shape[0] // 2, shape[1] - 1)
    np.testing.assert_allclose(cost_field(costs, goal), reference_dijkstra(costs, goal), rtol=1e-9)


def wall_points(x: float, y_from: float, y_to: float) -> np.ndarray:
    ys = np.arange(y_from, y_to, 0.02)
    return np.column_stack((np.full_like(ys, x), ys))


def test_field_and_carrot_lead_around_a_wall():
    grid = NavigationGrid(NavGridConfig(size=10.0))
    # A wall between robot (0, 0) and goal (2, 0), open above y = 1.
    grid.update(wall_points(1.0, -3.0, 1.0), (0.0, 0.0))
    grid.compute_field((2.0, 0.0), (0.0, 0.0))
    straight = grid.cost_at(np.array([[0.0, 0.0]]))[0]
    assert straight > 2.0 * math.hypot(1.0, 1.0)  # has to go up past y = 1 and back down
    carrot = grid.carrot((0.0, 0.0), 0.8)
    assert carrot is not None and carrot[1] > 0.4  # heads up toward the opening
    detour = grid.cost_at(np.array([[0.0, 0.8]]))[0]
    assert detour < straight  # moving toward the opening lowers the cost


def test_path_descends_the_field_around_the_wall_to_the_goal():
    grid = NavigationGrid(NavGridConfig(size=10.0))
    assert grid.path((0.0, 0.0), 1.0) is None  # no field yet
    grid.update(wall_points(1.0, -3.0, 1.0), (0.0, 0.0))
    grid.compute_field((2.0, 0.0), (0.0, 0.0))
    short = grid.path((0.0, 0.0), 0.8)
    assert short is not None and np.allclose(short[0], (0.05, 0.05))  # the robot's cell
    assert tuple(short[-1]) == grid.carrot((0.0, 0.0), 0.8)
    whole = grid.path((0.0, 0.0), 20.0)
    assert tuple(whole[-1]) == (2.0, 0.0)  # ends at the goal itself
    costs = grid.cost_at(whole[:-1])
    assert np.all(np.diff(costs) < 0.0)  # every step goes downhill
    assert whole[:, 1].max() > 1.0  # over the top of the wall
    clearance = np.abs(whole[:, 0] - 1.0)[whole[:, 1] < 1.0]
    assert clearance.min() > 0.1  # never through it


def test_beams_clear_obstacles_that_moved_away():
    grid = NavigationGrid(NavGridConfig(size=10.0))
    grid.update(np.array([[1.0, 0.0]]), (0.0, 0.0))
    cell = grid.to_cell(np.array([[1.0, 0.0]]))[0]
    assert grid.occupied[cell[0], cell[1]]
    grid.update(np.array([[3.0, 0.0]]), (0.0, 0.0))  # the beam now passes through
    assert not grid.occupied[cell[0], cell[1]]


def test_a_beam_grazing_past_an_edge_does_not_clear_the_edge():
    # An edge point seen at (1.04, 0.03); a later beam from elsewhere passes 3-7 cm beside
    # it, through the same cell, to an obstacle behind. The edge is still there.
    edge = np.array([[1.04, 0.03]])
    behind = np.array([[2.5, 0.11]])  # the beam from (-0.5, 0.05) passes (1.04, ~0.08)
    for clear_radius, kept in ((0.04, True), (0.15, False)):  # 0.15: any beam clears a cell
        grid = NavigationGrid(NavGridConfig(size=10.0, clear_radius=clear_radius))
        grid.update(edge, (0.0, 0.0))
        cell = grid.to_cell(edge)[0]
        grid.update(behind, (-0.5, 0.05))
        assert grid.occupied[cell[0], cell[1]] == kept


def test_a_point_the_same_scan_still_sees_beside_is_not_cleared():
    edge = np.array([[1.02, 0.05]])
    grid = NavigationGrid(NavGridConfig(size=10.0))
    grid.update(edge, (0.0, 0.0))
    cell = grid.to_cell(edge)[0]
    through = edge * 3.0  # a beam's hit straight behind the remembered point
    # One beam passes through the remembered point; another of the same scan hits 8 cm away,
    # in the next cell.
    grid.update(np.vstack((through, [[1.02, 0.13]])), (0.0, 0.0))
    assert grid.occupied[cell[0], cell[1]]
    grid.update(np.vstack((through, [[1.02, 0.4]])), (0.0, 0.0))  # nothing beside it now
    assert not grid.occupied[cell[0], cell[1]]


def grid_seeing(points: np.ndarray, field_from: NavigationGrid | None = None) -> NavigationGrid:
    """A grid that saw `points` from the origin, holding `field_from`'s field (if given)."""
    grid = NavigationGrid(NavGridConfig(size=10.0))
    grid.update(points, (0.0, 0.0))
    if field_from is not None:
        grid.field, grid.field_goal = field_from.field, field_from.field_goal
    return grid


def test_forget_clears_what_was_remembered_inside_a_disc_only():
    grid = NavigationGrid(NavGridConfig(size=10.0))
    inside = np.array([[1.0, 0.2], [1.2, 0.0]])  # on a 0.2-m circle round (1, 0)
    outside = wall_points(1.5, -0.5, 0.5)  # a wall 0.3 m behind its surface
    grid.update(np.vstack((inside, outside)), (0.0, 0.0))
    before = int(grid.occupied.sum())
    grid.forget(np.array([[1.0, 0.0, 0.2]]))
    assert not grid.occupied[tuple(grid.to_cell(inside).T)].any()
    assert grid.occupied[tuple(grid.to_cell(outside).T)].all()
    assert int(grid.occupied.sum()) == before - 2


def test_a_replan_keeps_the_route_unless_the_new_one_is_clearly_cheaper():
    goal = (2.0, 0.0)
    # The wall's top end is nearer: the route goes over the top.
    first = grid_seeing(wall_points(1.0, -1.0, 0.9))
    assert first.compute_field(goal, (0.0, 0.0))
    assert first.carrot((0.0, 0.0), 0.8)[1] > 0.3
    # Its bottom end turns out 0.2 m shorter: under it is now a few % cheaper.
    shorter = wall_points(1.0, -0.8, 0.9)
    fresh = grid_seeing(shorter, first)
    assert fresh.compute_field(goal, (0.0, 0.0), keep_route=False)
    assert fresh.carrot((0.0, 0.0), 0.8)[1] < -0.3
    kept = grid_seeing(shorter, first)
    assert not kept.compute_field(goal, (0.0, 0.0))
    assert kept.carrot((0.0, 0.0), 0.8)[1] > 0.3  # still over the top
    # 0.5 m shorter: the bottom route is clearly cheaper and replaces it.
    much_shorter = grid_seeing(wall_points(1.0, -0.5, 0.9), first)
    assert much_shorter.compute_field(goal, (0.0, 0.0))
    assert much_shorter.carrot((0.0, 0.0), 0.8)[1] < -0.3
    # Without hysteresis every replan takes the cheapest route.
    eager = NavigationGrid(NavGridConfig(size=10.0, route_hysteresis=0.0))
    eager.update(shorter, (0.0, 0.0))
    eager.field, eager.field_goal = first.field, first.field_goal
    assert eager.compute_field(goal, (0.0, 0.0))
    assert eager.carrot((0.0, 0.0), 0.8)[1] < -0.3


def door(half_width: float) -> np.ndarray:
    """A wall at x = 1 with a door centred on y = 0.05 (a cell centre) between exact jambs."""
    centre = 0.05
    return np.vstack(
        (
            wall_points(1.0, -2.4, centre - half_width),
            [[1.0, centre - half_width], [1.0, centre + half_width]],
            wall_points(1.0, centre + half_width + 0.02, 2.4),
        )
    )


def test_a_door_whose_width_wavers_at_the_lethal_line_keeps_the_route_through_it():
    goal = (2.0, 0.05)
    grid = NavigationGrid(NavGridConfig(size=10.0))
    inflation = grid.config.inflation_radius
    # The door's centre cells are 0.216 m from the jambs: clear of the 0.19 m lethal line.
    grid.update(door(0.21), (0.0, 0.0))
    assert grid.compute_field(goal, (0.0, 0.0))
    path = grid.path((0.0, 0.0), 5.0)
    assert abs(path[np.argmin(np.abs(path[:, 0] - 1.0)), 1] - 0.05) < 1e-9
    # Seen from elsewhere the jambs measure 3 cm closer: 0.187 m, lethal by 3 mm.
    grid.update(door(0.18), (0.0, 0.0))
    assert inflation - grid.config.route_tolerance < math.hypot(0.05, 0.18) < inflation
    assert not grid.compute_field(goal, (0.0, 0.0))  # the route through the door stays
    # A door that really is too narrow (0.158 m) gives the route up.
    grid.update(door(0.15), (0.0, 0.0))
    assert grid.compute_field(goal, (0.0, 0.0))


def test_after_a_recovery_the_route_is_chosen_afresh():
    guidance = GuidanceConfig(stuck_time=1.0, recovery_time=0.5, replan_period=0.2)
    controller = FallbackController(guidance=guidance)
    kept_routes = []
    plan = controller.grid.compute_field

    def recording(goal, robot, keep_route=True):
        kept_routes.append((controller.recoveries, keep_route))
        return plan(goal, robot, keep_route)

    controller.grid.compute_field = recording
    wall = wall_points(0.3, -0.6, 0.6)
    for step in range(40):  # wedged: one recovery after 1 s
        controller.compute(wall, (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), step * 0.05)
    assert controller.recoveries == 1
    first_after = next(i for i, (recoveries, _) in enumerate(kept_routes) if recoveries == 1)
    assert kept_routes[first_after][1] is False
    assert all(keep for recoveries, keep in kept_routes if recoveries == 0)
    assert all(keep for _, keep in kept_routes[first_after + 1 :])


def test_invalid_grid_config_is_rejected():
    with pytest.raises(ValueError):
        NavigationGrid(NavGridConfig(resolution=0.0))
    with pytest.raises(ValueError):
        NavigationGrid(NavGridConfig(inflation_radius=0.5, proximity_radius=0.2))
    for name in ("route_hysteresis", "route_tolerance"):
        with pytest.raises(ValueError, match=name):
            NavigationGrid(NavGridConfig(**{name: -0.1}))
    with pytest.raises(ValueError, match="clear_radius"):
        NavigationGrid(NavGridConfig(clear_radius=0.0))


def test_guided_controller_escapes_a_trap_plain_dwa_gets_stuck_in():
    # A U-shaped trap opening toward the robot's back; the goal lies behind its bottom.
    ys = np.arange(-0.8, 0.8, 0.02)
    xs = np.arange(-0.5, 0.6, 0.02)
    trap = np.vstack(
        (
            np.column_stack((np.full_like(ys, 0.6), ys)),
            np.column_stack((xs, np.full_like(xs, 0.8))),
            np.column_stack((xs, np.full_like(xs, -0.8))),
        )
    )

    def run(enabled: bool) -> float:
        controller = FallbackController(guidance=GuidanceConfig(enabled=enabled))
        x, y, yaw, v, w = 0.0, 0.0, 0.0, 0.0, 0.0
        goal = (2.0, 0.0)
        for step in range(600):  # 30 s at 20 Hz, ideal unicycle
            c, s = math.cos(yaw), math.sin(yaw)
            local = (trap - (x, y)) @ np.array([[c, -s], [s, c]])
            in_range = np.hypot(local[:, 0], local[:, 1]) < 3.5
            result = controller.compute(local[in_range], (x, y, yaw), goal, (v, w), step * 0.05)
            v, w = result.linear, result.angular
            x, y, yaw = x + v * math.cos(yaw) * 0.05, y + v * math.sin(yaw) * 0.05, yaw + w * 0.05
            if math.hypot(goal[0] - x, goal[1] - y) < 0.2:
                break
        return math.hypot(goal[0] - x, goal[1] - y)

    assert run(enabled=True) < 0.2
    assert run(enabled=False) > 1.0


def test_controller_that_cannot_move_recovers_then_resumes():
    guidance = GuidanceConfig(stuck_time=1.0, recovery_time=0.5, recovery_speed=0.08)
    controller = FallbackController(guidance=guidance)
    wall = wall_points(0.3, -0.6, 0.6)
    reasons = []
    for step in range(40):  # the pose never changes: the robot is wedged
        result = controller.compute(wall, (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), step * 0.05)
        reasons.append(result.reason)
        if result.reason.startswith("recovery"):
            assert -0.08 - 1e-9 <= result.linear <= 0.08 + 1e-9
    first = next(i for i, r in enumerate(reasons) if r.startswith("recovery"))
    assert first * 0.05 == pytest.approx(1.0)
    assert all(r.startswith("recovery") for r in reasons[first : first + 10])
    assert not reasons[first + 10].startswith("recovery")
    assert controller.recoveries == 1


def test_holding_still_on_purpose_is_not_being_stuck():
    guidance = GuidanceConfig(stuck_time=1.0, recovery_time=0.5, recovery_speed=0.08)
    controller = FallbackController(guidance=guidance)
    wall = wall_points(0.3, -0.6, 0.6)
    for step in range(60):  # 3 s standing still, held on purpose (e.g. yielding) all along
        controller.hold()
        result = controller.compute(wall, (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), step * 0.05)
        assert not result.reason.startswith("recovery")
    assert controller.recoveries == 0
    for step in range(60, 90):  # no longer held: the stuck timer runs from here
        result = controller.compute(wall, (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), step * 0.05)
    assert controller.recoveries == 1


def test_recovery_backs_away_from_a_wall_ahead():
    controller = FallbackController(guidance=GuidanceConfig(stuck_time=0.5))
    wall = wall_points(0.2, -1.0, 1.0)  # 0.2 m ahead: inside footprint + margin slack
    result = None
    for step in range(12):
        result = controller.compute(wall, (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), step * 0.05)
    assert result is not None and result.reason.startswith("recovery")
    assert result.linear < 0.0


def test_a_clock_jump_backwards_does_not_hold_a_recovery_or_the_plan():
    guidance = GuidanceConfig(stuck_time=1.0, recovery_time=5.0, recovery_speed=0.08)
    controller = FallbackController(guidance=guidance)
    wall = wall_points(0.3, -0.6, 0.6)
    now = 100.0
    for step in range(25):  # wedged long enough to start a 5 s recovery
        result = controller.compute(
            wall, (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), now + step * 0.05
        )
    assert result.reason.startswith("recovery")
    # /clock jumps 50 s back (a simulator restart): the old clock's recovery window and
    # plan time must not hold for the 50 s it takes the new clock to catch up.
    result = controller.compute(np.zeros((0, 2)), (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), 50.0)
    assert not result.reason.startswith("recovery")
    assert controller._planned_at == 50.0


# --------------------------------------------------------------- unseen is not free

LIDAR_270 = ObservedSector.from_scan(-0.75 * math.pi, math.radians(1.0), 271, -0.032, 0.0)


def test_recovery_with_a_270_degree_lidar_turns_in_place_instead_of_reversing():
    wall = wall_points(0.2, -1.0, 1.0)  # as in the test above: the 360-degree recovery backs up
    controller = FallbackController(guidance=GuidanceConfig(stuck_time=0.5))
    recovering = []
    for step in range(50):  # wedged: the pose never changes
        result = controller.compute(
            wall, (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), step * 0.05, observed_sector=LIDAR_270
        )
        assert result.linear >= 0.0
        if result.reason.startswith("recovery"):
            recovering.append(result)
    assert controller.recoveries == 1 and recovering
    assert all(r.linear == 0.0 and r.angular != 0.0 for r in recovering)
    assert all(r.blind_samples > 0 for r in recovering)


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_blind_recovery_turns_away_from_the_nearest_obstacle(side):
    # A wall ahead and, nearer, a post ahead on one side: turn toward the other side.
    points = np.vstack((wall_points(0.2, -1.0, 1.0), [[0.16, side * 0.08]]))
    controller = FallbackController(guidance=GuidanceConfig(stuck_time=0.5))
    velocity = (0.0, 0.0)
    turns = []
    for step in range(30):
        result = controller.compute(
            points, (0.0, 0.0, 0.0), (3.0, 0.0), velocity, step * 0.05, observed_sector=LIDAR_270
        )
        if result.reason.startswith("recovery"):
            turns.append(result.angular)
            velocity = (result.linear, result.angular)
    assert turns and all(turn * side < 0.0 for turn in turns)


def as_scan(points: np.ndarray, mount: np.ndarray) -> np.ndarray:
    """What a 270-degree, 1-degree lidar at `mount` returns of `points` (base frame): the
    nearest point per beam, in beam order, as the mover tracker expects a scan."""
    rel = points - mount
    bearing = np.arctan2(rel[:, 1], rel[:, 0])
    beam = np.round(np.degrees(bearing)).astype(int)
    in_view = np.abs(beam) <= 135
    order = np.lexsort((np.hypot(rel[:, 0], rel[:, 1]), beam))
    order = order[in_view[order]]
    first = np.r_[True, np.diff(beam[order]) != 0]
    return points[order[first]]


def test_a_270_degree_lidar_robot_escapes_a_trap_without_reversing_into_what_it_cannot_see():
    # The U-shaped trap of the guided-controller test, plus a post right behind the start
    # that a 270-degree front lidar (blind from -135 to +135 degrees behind) cannot see.
    ys = np.arange(-0.8, 0.8, 0.02)
    xs = np.arange(-0.5, 0.6, 0.02)
    post_y = np.arange(-0.15, 0.15, 0.02)
    world = np.vstack(
        (
            np.column_stack((np.full_like(ys, 0.6), ys)),
            np.column_stack((xs, np.full_like(xs, 0.8))),
            np.column_stack((xs, np.full_like(xs, -0.8))),
            np.column_stack((np.full_like(post_y, -0.3), post_y)),
        )
    )
    mount = np.array(LIDAR_270.origin)

    def run(sector: ObservedSector | None) -> tuple[float, float, float, int]:
        controller = FallbackController(guidance=GuidanceConfig(stuck_time=1.0))
        x, y, yaw, v, w = 0.0, 0.0, 0.0, 0.0, 0.0
        goal = (2.0, 0.0)
        slowest, nearest = math.inf, math.inf
        for step in range(1200):  # 60 s at 20 Hz, ideal unicycle
            c, s = math.cos(yaw), math.sin(yaw)
            local = (world - (x, y)) @ np.array([[c, -s], [s, c]])
            result = controller.compute(
                as_scan(local, mount),
                (x, y, yaw),
                goal,
                (v, w),
                step * 0.05,
                observed_sector=sector,
            )
            v, w = result.linear, result.angular
            slowest = min(slowest, v)
            x, y, yaw = x + v * c * 0.05, y + v * s * 0.05, yaw + w * 0.05
            nearest = min(nearest, float(np.hypot(*(world - (x, y)).T).min()))
            if math.hypot(goal[0] - x, goal[1] - y) < 0.2:
                break
        return math.hypot(goal[0] - x, goal[1] - y), slowest, nearest, controller.recoveries

    distance, slowest, nearest, recoveries = run(LIDAR_270)
    assert recoveries >= 1  # it did get stuck and recover
    assert slowest >= 0.0  # never reversed: the back is unobserved
    assert nearest > 0.11  # never touched anything, seen or not
    assert distance < 0.2
    # Told nothing about the lidar's coverage, the same recovery backs toward the post.
    assert run(None)[1] < 0.0


def _wall_cells(controller: FallbackController) -> set[tuple[int, int]]:
    return {tuple(cell) for cell in np.argwhere(controller.grid.occupied)}


def test_a_scan_is_mapped_once_from_the_pose_it_was_taken_at():
    # A wall 2.5 m ahead, seen from the origin; the robot then turns 0.1 rad (one control
    # tick at 2 rad/s) before the next scan comes.
    wall = wall_points(2.5, -1.0, 1.0)
    turned = (0.0, 0.0, 0.1)
    goal = (5.0, 0.0)
    once = FallbackController()
    once.compute(wall, (0.0, 0.0, 0.0), goal, (0.0, 0.0), 0.0, scan_id=1)
    seen = _wall_cells(once)
    once.compute(wall, turned, goal, (0.0, 0.0), 0.05, scan_id=1)  # the same scan
    assert _wall_cells(once) == seen
    # Taken at the origin, mapped a tick later from the turned pose: placed as seen.
    late = FallbackController()
    late.compute(wall, turned, goal, (0.0, 0.0), 0.05, scan_id=1, scan_pose=(0.0, 0.0, 0.0))
    assert _wall_cells(late) == seen
    # Without a scan identity every call maps (the old behaviour): the wall smears 0.25 m.
    every = FallbackController()
    every.compute(wall, (0.0, 0.0, 0.0), goal, (0.0, 0.0), 0.0)
    every.compute(wall, turned, goal, (0.0, 0.0), 0.05)
    phantom = _wall_cells(every) - seen
    ys = every.grid.origin[1] + (np.array([j for _, j in phantom]) + 0.5) * 0.1
    assert phantom and ys.max() > 1.1  # beyond the wall's real end at y = 1
