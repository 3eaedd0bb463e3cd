import dataclasses
import math

import pytest

from hybrid_fallback.arbiter import (
    Arbiter,
    ArbiterConfig,
    ArbiterInputs,
    CommandSource,
    Decision,
    Mode,
)

PERIOD = 0.05


class Driver:
    """Steps an arbiter through time with a policy publishing every period by default."""

    def __init__(self, **config: object) -> None:
        defaults: dict[str, object] = {
            "policy_timeout": 0.5,
            "retry_after": 2.0,
            "max_retry_delay": 16.0,
            "stall_window": 5.0,
            "min_progress": 0.2,
            "intervention_window": 2.0,
            "intervention_min_samples": 10,
            # The mechanisms under test, with room to retry (the deployed default is 0).
            "max_intervention_rate": 0.5,
            "max_retries": 5,
        }
        defaults.update(config)
        self.arbiter = Arbiter(ArbiterConfig(**defaults))  # type: ignore[arg-type]
        self.now = 0.0
        self.goal_id: int | None = 1
        self.distance = 50.0
        self.speed = 0.2  # m/s toward the goal while the policy drives
        self.active = True
        self.publishing = True
        self.last_cmd: float | None = None
        self.teleop_time: float | None = None
        self.fallback_healthy = True
        self.moving_threat = ""
        self.decisions: list[Decision] = []

    def step(self, duration: float = PERIOD) -> Decision:
        end = self.now + duration
        decision = self.decisions[-1] if self.decisions else None
        while self.now < end - 1e-9:
            self.now = round(self.now + PERIOD, 9)
            if self.publishing:
                self.last_cmd = self.now
            if self.arbiter.mode in (Mode.POLICY, Mode.FALLBACK):
                self.distance = max(0.0, self.distance - self.speed * PERIOD)
            decision = self.arbiter.update(self.inputs(), self.now)
            self.decisions.append(decision)
        assert decision is not None
        return decision

    def inputs(self) -> ArbiterInputs:
        return ArbiterInputs(
            goal_id=self.goal_id,
            goal_distance=self.distance,
            policy_active=self.active,
            last_policy_cmd_time=self.last_cmd,
            last_teleop_time=self.teleop_time,
            fallback_healthy=self.fallback_healthy,
            fallback_status="ok" if self.fallback_healthy else "scan stale (0.80 s)",
            moving_threat=self.moving_threat,
        )

    def switches(self) -> list[Decision]:
        return [d for d in self.decisions if d.switched]

    def time_of_first(self, mode: Mode, after: float = 0.0) -> float:
        times = [
            (i + 1) * PERIOD
            for i, d in enumerate(self.decisions)
            if d.mode is mode and (i + 1) * PERIOD > after + 1e-9
        ]
        return times[0]


def in_policy(**config: object) -> Driver:
    driver = Driver(**config)
    decision = driver.step()
    assert decision.mode is Mode.POLICY
    return driver


def test_no_goal_is_idle_with_zero_command():
    driver = Driver()
    driver.goal_id = None
    decision = driver.step(1.0)
    assert decision.mode is Mode.IDLE and decision.source is CommandSource.ZERO
    assert decision.reason == "no goal"
    assert driver.switches() == []


def test_goal_with_healthy_policy_starts_in_policy():
    driver = Driver()
    decision = driver.step()
    assert decision.switched and decision.previous is Mode.IDLE
    assert decision.mode is Mode.POLICY and decision.source is CommandSource.POLICY
    assert decision.reason == "new goal; policy active"


def test_goal_with_inactive_policy_starts_in_fallback():
    driver = Driver()
    driver.active = False
    decision = driver.step()
    assert decision.mode is Mode.FALLBACK and decision.source is CommandSource.FALLBACK
    assert decision.reason == "new goal; policy inactive"


def test_goal_with_inactive_policy_and_stop_choice_stops():
    driver = Driver(on_policy_disabled="stop")
    driver.active = False
    decision = driver.step()
    assert decision.mode is Mode.STOPPED and decision.source is CommandSource.ZERO
    assert "on_policy_disabled=stop" in decision.reason


def test_policy_inactive_switches_to_fallback_at_once_without_counting_a_failure():
    driver = in_policy()
    driver.step(1.0)
    driver.active = False
    decision = driver.step()
    assert decision.switched and decision.mode is Mode.FALLBACK
    assert decision.reason == "policy/active false"
    assert driver.arbiter.failures == 0


def test_policy_disabled_with_stop_choice_stops_and_returns_after_retry_after():
    driver = Driver(on_policy_disabled="stop")
    driver.step(1.0)
    driver.active = False
    decision = driver.step()
    assert decision.mode is Mode.STOPPED
    assert decision.reason == "policy/active false; on_policy_disabled=stop"
    driver.step(5.0)
    assert driver.arbiter.mode is Mode.STOPPED
    driver.active = True
    back = driver.now
    driver.step(3.0)
    returned = driver.time_of_first(Mode.POLICY, after=back)
    assert returned - back == pytest.approx(2.0, abs=2 * PERIOD)


def test_silent_policy_switches_after_policy_timeout_and_not_before():
    driver = in_policy()
    driver.step(1.0)
    driver.publishing = False
    silent_since = driver.last_cmd
    driver.step(0.5)  # exactly policy_timeout old: still fresh
    assert driver.arbiter.mode is Mode.POLICY
    decision = driver.step()
    assert decision.switched and decision.mode is Mode.FALLBACK
    assert decision.reason.startswith("policy/cmd_vel silent for 0.55 s")
    assert "policy_timeout 0.5 s" in decision.reason
    assert driver.now - silent_since == pytest.approx(0.55)
    assert driver.arbiter.failures == 1


def test_policy_that_never_published_is_silent():
    driver = Driver()
    driver.publishing = False
    driver.active = True
    decision = driver.step()
    assert decision.mode is Mode.FALLBACK
    assert decision.reason == "new goal; no policy/cmd_vel received"


def test_stall_switches_to_fallback_after_stall_window():
    driver = in_policy()
    driver.speed = 0.0  # policy publishes but the robot makes no progress
    driver.step(4.9)
    assert driver.arbiter.mode is Mode.POLICY
    driver.step(0.2)
    decision = driver.switches()[-1]
    assert decision.mode is Mode.FALLBACK
    assert decision.reason.startswith("no progress: 0.00 m toward the goal in 5.0 s")
    assert driver.arbiter.failures == 1


def test_enough_progress_is_not_a_stall():
    driver = in_policy()
    driver.speed = 0.05  # 0.25 m per 5 s window > min_progress 0.2
    driver.step(20.0)
    assert driver.arbiter.mode is Mode.POLICY
    assert len(driver.switches()) == 1


def test_slow_progress_below_min_progress_is_a_stall():
    driver = in_policy()
    driver.speed = 0.03  # 0.15 m per 5 s window < 0.2
    driver.step(5.5)
    assert driver.arbiter.mode is Mode.FALLBACK
    assert "no progress: 0.15 m" in driver.switches()[-1].reason


class RouteDriver(Driver):
    """The robot closes on the goal in a straight line while, on the fallback's route
    (around a dead end's wall), its distance stays the same: it is driving into the trap."""

    def __init__(self, route_known: bool = True, **config: object) -> None:
        super().__init__(**config)
        self.route_known = route_known
        self.route_calls = 0

    def route_distance(self, position: tuple[float, float]) -> float:
        self.route_calls += 1
        return 12.0 if self.route_known else math.nan

    def inputs(self) -> ArbiterInputs:
        return dataclasses.replace(
            super().inputs(),
            position=(50.0 - self.distance, 0.0),
            route_distance=self.route_distance,
        )


def test_closing_in_a_straight_line_into_a_dead_end_is_no_progress_along_the_route():
    driver = RouteDriver()
    driver.step()
    assert driver.arbiter.mode is Mode.POLICY
    driver.step(5.1)  # 1 m closer in a straight line, none along the route
    decision = driver.switches()[-1]
    assert decision.mode is Mode.FALLBACK
    assert decision.reason.startswith("no progress: 0.00 m along the route to the goal in 5.0 s")
    assert driver.route_calls > 0


def test_straight_line_progress_counts_without_a_route_or_with_the_check_off():
    for driver in (RouteDriver(route_known=False), RouteDriver(stall_along_route=False)):
        driver.step(20.0)
        assert driver.arbiter.mode is Mode.POLICY, driver.switches()[-1].reason


def feed_scales(driver: Driver, pattern: list[float], duration: float) -> None:
    """Record one safety/scale sample per period, cycling through `pattern`."""
    index = 0
    end = driver.now + duration
    while driver.now < end - 1e-9:
        driver.arbiter.record_safety_scale(pattern[index % len(pattern)], driver.now)
        index += 1
        driver.step()


def test_high_intervention_rate_switches_to_fallback():
    driver = in_policy()
    feed_scales(driver, [0.5, 0.5, 1.0], 1.9)  # 2/3 of samples cut, window not yet full
    assert driver.arbiter.mode is Mode.POLICY
    feed_scales(driver, [0.5, 0.5, 1.0], 0.2)
    decision = driver.switches()[-1]
    assert decision.mode is Mode.FALLBACK
    assert decision.reason.startswith("safety intervention rate 0.")
    assert "> 0.5 over 2 s" in decision.reason


def test_intervention_rate_just_below_threshold_does_not_switch():
    driver = in_policy()
    feed_scales(driver, [0.5] * 9 + [1.0] * 11, 10.0)  # 45 %, at most 19 of 41 in a window
    assert driver.arbiter.mode is Mode.POLICY
    assert len(driver.switches()) == 1


def test_too_few_intervention_samples_are_not_judged():
    driver = in_policy()
    for _ in range(5):
        driver.arbiter.record_safety_scale(0.0, driver.now)
        driver.step()
    assert driver.arbiter.mode is Mode.POLICY


def test_scales_are_ignored_outside_policy():
    driver = Driver()
    driver.active = False
    driver.step()
    for _ in range(50):
        driver.arbiter.record_safety_scale(0.0, driver.now)
    assert driver.arbiter.intervention_rate(driver.now) == (0.0, 0)


def test_returns_to_policy_after_retry_after_of_healthy_policy():
    driver = in_policy()
    driver.step(1.0)
    driver.publishing = False
    driver.step(0.6)
    assert driver.arbiter.mode is Mode.FALLBACK
    failed_at = driver.now
    driver.publishing = True
    driver.step(3.0)
    back = [d for d in driver.switches() if d.mode is Mode.POLICY][-1]
    assert back.previous is Mode.FALLBACK
    assert back.reason.startswith("policy healthy for 2.0") and back.reason.endswith("retry 1")
    assert driver.time_of_first(Mode.POLICY, after=failed_at) - failed_at == pytest.approx(
        2.0, abs=2 * PERIOD
    )


def test_a_moving_obstacle_hands_over_without_a_failure_until_it_has_passed():
    driver = in_policy(fallback_for_movers=True)
    driver.step(1.0)
    driver.moving_threat = "the policy's command meets one in 2.0 s"
    decision = driver.step()
    assert decision.mode is Mode.FALLBACK and decision.switched
    assert decision.reason == "moving obstacle: the policy's command meets one in 2.0 s"
    assert driver.arbiter.failures == 0
    driver.step(5.0)  # the threat lasts: the policy stays out however healthy it is
    assert driver.arbiter.mode is Mode.FALLBACK
    passed_at = driver.now
    driver.moving_threat = ""
    assert wait_for_policy(driver) == pytest.approx(2.0, abs=2 * PERIOD)  # retry_after
    assert driver.now - passed_at == pytest.approx(2.0, abs=2 * PERIOD)
    assert driver.arbiter.failures == 0


def test_with_the_mover_take_over_off_a_threat_changes_nothing():
    driver = Driver(fallback_for_movers=False)
    driver.step()
    driver.moving_threat = "the policy's command meets one in 1.0 s"
    driver.step(3.0)
    assert [d.mode for d in driver.switches()] == [Mode.POLICY]


def fail_by_silence(driver: Driver) -> float:
    """Silence the policy until FALLBACK, then publish again; returns the switch time."""
    driver.publishing = False
    while driver.arbiter.mode is Mode.POLICY:
        driver.step()
    driver.publishing = True
    return driver.now


def wait_for_policy(driver: Driver, limit: float = 100.0) -> float:
    start = driver.now
    while driver.arbiter.mode is not Mode.POLICY:
        driver.step()
        assert driver.now - start < limit
    return driver.now - start


def test_retry_delay_backs_off_exponentially_and_is_capped():
    driver = in_policy()
    delays = []
    for _ in range(5):
        fail_by_silence(driver)
        delays.append(wait_for_policy(driver))
    assert delays == pytest.approx([2.0, 4.0, 8.0, 16.0, 16.0], abs=2 * PERIOD)
    assert driver.arbiter.failures == 5


def test_max_retries_then_stays_in_fallback_until_a_new_goal():
    driver = Driver(max_retries=2)
    driver.step()
    for _ in range(2):
        fail_by_silence(driver)
        wait_for_policy(driver)
    fail_by_silence(driver)
    last = driver.switches()[-1]
    assert last.mode is Mode.FALLBACK and "max_retries (2) used" in last.reason
    assert driver.arbiter.retries_exhausted
    driver.step(120.0)
    assert driver.arbiter.mode is Mode.FALLBACK
    driver.goal_id = 2  # a new goal resets the failure count
    driver.step(2.5)
    assert driver.arbiter.mode is Mode.POLICY
    assert driver.arbiter.failures == 0


def test_zero_max_retries_never_returns_after_a_failure():
    driver = Driver(max_retries=0)
    driver.step()
    fail_by_silence(driver)
    driver.step(60.0)
    assert driver.arbiter.mode is Mode.FALLBACK


def test_command_age_hovering_at_policy_timeout_does_not_flap():
    driver = in_policy()
    driver.publishing = False
    # Commands arrive alternately just inside and just outside policy_timeout.
    gaps = [0.45, 0.55]
    next_cmd = driver.now
    for index in range(200):
        next_cmd += gaps[index % 2]
        while driver.now < next_cmd - 1e-9:
            driver.step()
        driver.last_cmd = driver.now
    modes = [d.mode for d in driver.switches()]
    assert modes == [Mode.POLICY, Mode.FALLBACK]  # one hand-over, no return, no flapping


def test_intervention_rate_hovering_at_threshold_switches_rarely():
    driver = in_policy()
    # Alternating windows slightly above and slightly below the 50 % threshold.
    above = [0.5, 0.5, 1.0, 0.5, 1.0]  # 60 %
    below = [0.5, 1.0, 0.5, 1.0, 1.0]  # 40 %
    for _ in range(30):
        feed_scales(driver, above, 1.0)
        feed_scales(driver, below, 1.0)
    history = list(driver.arbiter.history)
    # 60 s of hovering: a few hand-overs, each return delayed by the growing back-off.
    assert 3 <= len(history) <= 10
    waits = [
        later.time - earlier.time
        for earlier, later in zip(history, history[1:], strict=False)
        if earlier.to_mode is Mode.FALLBACK and later.to_mode is Mode.POLICY
    ]
    assert waits == sorted(waits) and waits[0] >= 2.0 - 1e-9
    assert waits[-1] >= 2 * waits[0] - 1e-9


def test_flapping_fallback_health_stops_and_stays_stopped():
    driver = Driver()
    driver.active = False
    driver.step()
    for index in range(100):
        driver.fallback_healthy = index % 2 == 0
        driver.step()
    modes = [d.mode for d in driver.switches()]
    assert modes == [Mode.FALLBACK, Mode.STOPPED]


def test_unhealthy_fallback_stops_and_recovers_after_recover_time():
    driver = in_policy()
    driver.fallback_healthy = False
    driver.step(1.0)
    assert driver.arbiter.mode is Mode.POLICY  # the policy is healthy: no need for the DWA
    driver.active = False
    decision = driver.step()
    assert decision.mode is Mode.STOPPED and decision.source is CommandSource.ZERO
    assert decision.reason == "policy/active false; fallback unhealthy: scan stale (0.80 s)"
    driver.fallback_healthy = True
    healthy_at = driver.now
    driver.step(1.0)
    recovered = driver.switches()[-1]
    assert recovered.mode is Mode.FALLBACK
    assert recovered.reason.startswith("fallback healthy again")
    assert driver.time_of_first(Mode.FALLBACK, after=healthy_at) - healthy_at == pytest.approx(
        0.5, abs=2 * PERIOD
    )


def test_fresh_teleop_overrides_every_mode_and_releases_after_timeout():
    for setup in ("policy", "fallback", "idle", "stopped"):
        driver = Driver()
        if setup == "fallback":
            driver.active = False
        if setup == "idle":
            driver.goal_id = None
        if setup == "stopped":
            driver.active = False
            driver.fallback_healthy = False
        before = driver.step().mode
        driver.teleop_time = driver.now
        decision = driver.step()
        assert decision.mode is Mode.TELEOP and decision.source is CommandSource.TELEOP
        assert decision.reason == "teleop command received (overrides)"
        driver.step(0.4)
        assert driver.arbiter.mode is Mode.TELEOP
        driver.step(0.2)
        released = driver.switches()[-1]
        assert released.previous is Mode.TELEOP and released.mode is before
        assert released.reason.startswith("teleop released; ")


def test_teleop_time_does_not_count_as_policy_stall():
    driver = in_policy()
    driver.speed = 0.0
    for _ in range(200):  # 10 s of teleop, robot not approaching the goal
        driver.teleop_time = driver.now
        driver.step()
    driver.teleop_time = None
    driver.speed = 0.2
    driver.step(1.0)
    assert driver.arbiter.mode is Mode.POLICY
    assert driver.arbiter.failures == 0


def test_goal_reached_goes_idle_and_stays_idle_until_a_new_goal():
    driver = in_policy()
    driver.distance = 0.09
    decision = driver.step()
    assert decision.mode is Mode.IDLE and decision.source is CommandSource.ZERO
    assert decision.reason == "goal reached (within 0.1 m)"
    driver.distance = 3.0  # pushed away: the goal stays done
    driver.step(2.0)
    assert driver.arbiter.mode is Mode.IDLE
    driver.goal_id = 2
    assert driver.step().mode is Mode.POLICY


def test_goal_cleared_goes_idle():
    driver = in_policy()
    driver.goal_id = None
    decision = driver.step()
    assert decision.mode is Mode.IDLE and decision.reason == "no goal"


def test_statistics_count_switches_and_time_per_mode():
    driver = in_policy()
    driver.step(1.0)
    driver.active = False
    driver.step(2.0)
    arbiter = driver.arbiter
    assert arbiter.switch_counts == {"IDLE->POLICY": 1, "POLICY->FALLBACK": 1}
    assert arbiter.time_in_mode[Mode.IDLE] == pytest.approx(PERIOD)
    # POLICY from the first update (t=0.05) to the one that saw policy/active false (t=1.1).
    assert arbiter.time_in_mode[Mode.POLICY] == pytest.approx(1.05)
    assert arbiter.time_in_mode[Mode.FALLBACK] == pytest.approx(2.0 - PERIOD)
    assert [r.reason for r in arbiter.history] == ["new goal; policy active", "policy/active false"]


def test_switched_only_on_the_update_that_changes_mode():
    driver = in_policy()
    driver.step(1.0)
    assert [d.switched for d in driver.decisions].count(True) == 1
    assert all(d.reason == "new goal; policy active" for d in driver.decisions)


@pytest.mark.parametrize(
    "field, value",
    [
        ("policy_timeout", 0.0),
        ("retry_after", -1.0),
        ("max_intervention_rate", 1.5),
        ("healthy_age_fraction", 0.0),
        ("max_retry_delay", 1.0),
        ("on_policy_disabled", "halt"),
        ("stall_window", math.nan),
        ("max_retries", -1),
    ],
)
def test_invalid_config_is_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        Arbiter(ArbiterConfig(**{field: value}))


# ---- the clock going back (a simulator restart, a /clock jump): checks keep running


def time_until(driver: Driver, condition, duration: float) -> float | None:
    """Step up to `duration`; the time from now at which `condition(decision)` first holds."""
    start = driver.now
    while driver.now < start + duration - 1e-9:
        if condition(driver.step()):
            return driver.now - start
    return None


def test_retry_after_a_clock_jump_back_waits_retry_after_not_the_jump():
    driver = in_policy()
    driver.step(1.0)
    driver.publishing = False
    driver.step(0.6)
    assert driver.arbiter.mode is Mode.FALLBACK
    driver.publishing = True
    driver.step(1.0)  # healthy for half of retry_after (2 s)
    driver.now -= 30.0
    took = time_until(driver, lambda d: d.mode is Mode.POLICY, 5.0)
    assert took is not None and took <= 2.0 + 2 * PERIOD, took


def test_stopped_recovers_after_a_clock_jump_back_within_fallback_recover_time():
    driver = in_policy()
    driver.active = False
    driver.fallback_healthy = False
    assert driver.step().mode is Mode.STOPPED
    driver.fallback_healthy = True
    driver.step(0.2)  # recovering (fallback_recover_time 0.5 s)
    assert driver.arbiter.mode is Mode.STOPPED
    driver.now -= 30.0
    took = time_until(driver, lambda d: d.mode is Mode.FALLBACK, 2.0)
    assert took is not None and took <= 0.5 + 2 * PERIOD, took


def test_stall_is_still_detected_after_a_clock_jump_back():
    driver = in_policy()
    driver.speed = 0.0  # the policy makes no progress
    driver.step(2.0)
    driver.now -= 30.0
    took = time_until(driver, lambda d: d.mode is Mode.FALLBACK, 8.0)
    assert took is not None and took <= 5.0 + 2 * PERIOD, took  # stall_window 5 s
    assert driver.switches()[-1].reason.startswith("no progress")


def test_intervention_window_holds_only_samples_after_a_clock_jump_back():
    driver = in_policy()
    feed_scales(driver, [1.0], 1.0)
    driver.now -= 30.0
    feed_scales(driver, [0.0, 1.0], 1.0)
    rate, count = driver.arbiter.intervention_rate(driver.now)
    # 1 s of samples at 20 Hz on the new clock, half of them cut; none from before.
    assert count <= 21 and rate == pytest.approx(0.5, abs=0.06), (rate, count)


def test_a_corrected_goal_keeps_the_failures_but_is_not_reached_any_more():
    driver = Driver(max_retries=0)
    driver.step()
    fail_by_silence(driver)
    driver.step(10.0)
    assert driver.arbiter.mode is Mode.FALLBACK and driver.arbiter.failures == 1
    driver.arbiter.goal_moved()  # same goal id, corrected coordinates
    driver.step(30.0)
    assert driver.arbiter.mode is Mode.FALLBACK and driver.arbiter.failures == 1
    driver.distance = 0.0
    driver.step()
    assert driver.arbiter.mode is Mode.IDLE
    driver.arbiter.goal_moved()  # reached in odom, corrected: drive again, still not the policy
    driver.distance = 1.0
    assert driver.step().mode is Mode.FALLBACK
