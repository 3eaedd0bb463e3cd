import json

from rlguard_common.world import load_world
from rlguard_tools.demo_report import Action, DemoLog, DemoScript, Sample, plot_trajectory


def test_script_runs_its_steps_in_order_with_delays():
    script = DemoScript(swap_delay=3.0, estop_delay=2.0, estop_hold=1.0, rollback_deadline=60.0)
    assert script.step(0.0, 0) == [Action.ENABLE_POLICY]
    assert script.step(5.0, 0) == []
    assert script.step(10.0, 1) == [Action.DISABLE_POLICY]
    assert script.step(20.0, 2) == [Action.REENABLE_POLICY]
    assert script.step(22.9, 2) == []
    assert script.step(23.0, 2) == [Action.SWAP_TO_ALTERNATE]
    # Nobody swaps back: goal 3 alone does not move the script on.
    assert script.step(30.0, 3) == []
    # The node's own rollback (at 28 s) stands in for the rollback by hand.
    assert script.step(31.0, 3, rolled_back_at=28.0) == [Action.TRIGGER_ESTOP]
    assert script.automatic_rollback == 28.0
    assert script.step(31.5, 3) == []
    assert script.step(32.0, 4) == [Action.RESET_ESTOP]
    assert script.pending() == [] and script.step(99.0, 5) == []
    assert Action.ROLLBACK_BY_HAND not in script.issued


def test_script_rolls_back_by_hand_when_the_monitor_does_not():
    script = DemoScript(swap_delay=0.0, estop_delay=1.0, rollback_deadline=60.0)
    script.step(0.0, 0)
    assert script.step(1.0, 2) == [
        Action.DISABLE_POLICY,
        Action.REENABLE_POLICY,
        Action.SWAP_TO_ALTERNATE,
    ]
    assert script.step(60.9, 3) == []
    assert script.step(61.0, 3) == [Action.ROLLBACK_BY_HAND]
    assert script.step(62.0, 3) == [Action.TRIGGER_ESTOP]
    # A rollback reported after the one by hand changes nothing.
    assert script.step(70.0, 3, rolled_back_at=69.0) == [Action.RESET_ESTOP]
    assert script.automatic_rollback is None


def test_script_never_skips_a_step_when_goals_come_fast():
    script = DemoScript(swap_delay=3.0)
    script.step(0.0, 0)
    assert script.step(1.0, 3) == [Action.DISABLE_POLICY, Action.REENABLE_POLICY]
    assert script.step(2.0, 4) == []
    assert script.step(4.0, 4, rolled_back_at=4.0) == [Action.SWAP_TO_ALTERNATE]
    assert script.step(4.5, 4, rolled_back_at=4.5) == []
    assert Action.TRIGGER_ESTOP in script.pending()


def test_rollback_events_are_reported_and_required_after_a_weak_swap():
    log = _log(["POLICY", "FALLBACK", "POLICY"])
    log.expect_rollback = True
    assert "the weak model was not rolled back by the live monitor" in log.failures()
    log.policy_event(40.0, {"type": "swap", "from": "a", "to": "b"})
    log.policy_event(
        52.5,
        {
            "type": "rollback",
            "automatic": True,
            "from": "weak_policy.pt",
            "to": "nav_policy.pt",
            "reason": "intervention rate 0.80 > 0.50",
            "probation_s": 12.5,
        },
    )
    assert log.failures() == []
    rows = dict(log.summary_rows())
    assert rows["automatic rollback"].startswith("weak_policy.pt -> nav_policy.pt at t=52.5 s")
    assert "12.5 s after the swap: intervention rate 0.80" in rows["automatic rollback"]
    report = log.to_json()
    assert [e["t"] for e in report["rollbacks"]] == [52.5]
    assert len(report["policy_events"]) == 2


def _log(modes, goals_reached=2, collisions=0):
    log = DemoLog(world="empty", goals=[(1.0, 0.0), (2.0, 0.0)], collisions=collisions)
    for i, mode in enumerate(modes):
        log.add_sample(Sample(t=float(i), x=0.1 * i, y=0.0, mode=mode, speed=0.1, scale=1.0))
    log.goal_times = [1.0, 2.0][:goals_reached]
    return log


def test_log_passes_only_with_every_goal_no_collision_and_both_modes():
    assert _log(["POLICY", "FALLBACK", "POLICY"]).failures() == []
    assert "reached 1 of 2 goals" in _log(["POLICY", "FALLBACK"], goals_reached=1).failures()
    collided = _log(["POLICY", "FALLBACK"], collisions=1).failures()
    assert any(f.startswith("1 collision(s)") for f in collided)
    assert any("FALLBACK" in f for f in _log(["POLICY", "POLICY"]).failures())


def test_collisions_are_split_into_at_fault_and_not_with_their_details():
    log = _log(["POLICY", "FALLBACK", "POLICY"])
    # The two running counts arrive on separate topics, in any order, and repeat.
    log.collision(10.0, 1, False, mode="POLICY", cmd_vel=[0.1, 0.0])
    log.collision(10.0, 1, True, mode="POLICY", cmd_vel=[0.1, 0.0])
    log.collision(10.2, 1, False, mode="POLICY")  # the 5 Hz repeat: no new episode
    log.collision(20.0, 2, False, mode="FALLBACK", cmd_vel=[0.0, 0.0])
    assert (log.collisions, log.at_fault_collisions, log.collisions_not_at_fault()) == (2, 1, 1)
    assert [(e["t"], e["kind"], e["mode"]) for e in log.collision_events] == [
        (10.0, "collision", "POLICY"),
        (10.0, "at fault", "POLICY"),
        (20.0, "collision", "FALLBACK"),
    ]
    assert "2 collision(s): 1 at fault, 1 hit while still or moving away" in log.failures()
    log.simulator = {"waiting_for_cmd_vel_wall_s": "12.50", "pacing": "lockstep"}
    rows = dict(log.summary_rows())
    assert rows["collisions"] == "2 (1 at fault, 1 hit while still or moving away)"
    assert rows["simulator waited for cmd_vel"].startswith("12.50 s wall")
    report = log.to_json()
    assert (report["collisions_at_fault"], report["collisions_not_at_fault"]) == (1, 1)
    assert not report["passed"] and len(report["collision_events"]) == 3
    assert report["simulator"]["pacing"] == "lockstep"
    # A collision that is not at fault still fails the demo.
    bump = _log(["POLICY", "FALLBACK"])
    bump.collision(5.0, 1, False, mode="POLICY")
    assert bump.at_fault_collisions == 0 and bump.failures()


def test_time_per_mode_path_length_and_mode_changes():
    log = _log(["POLICY", "POLICY", "FALLBACK", "FALLBACK", "POLICY"])
    assert log.time_per_mode() == {"POLICY": 2.0, "FALLBACK": 2.0}
    assert abs(log.path_length() - 0.4) < 1e-9
    assert [(a, b) for _, a, b in log.mode_changes] == [
        ("-", "POLICY"), ("POLICY", "FALLBACK"), ("FALLBACK", "POLICY"),
    ]  # fmt: skip


def test_hand_overs_the_script_did_not_ask_for_are_counted_and_limited():
    # t: 0 POLICY, 1 FALLBACK (disable policy at 0.5), 2 POLICY, 3 FALLBACK (unasked),
    # 4 POLICY, 5 STOPPED (weak model: swap 3.5, rollback 4.5), 6 POLICY, 7 IDLE
    # (goal reached), 8 POLICY, 9 STOPPED (e-stop at 8.5), 10 POLICY, 11 STOPPED (unasked).
    modes = ["POLICY", "FALLBACK", "POLICY", "FALLBACK", "POLICY", "STOPPED", "POLICY"]
    log = _log(modes + ["IDLE", "POLICY", "STOPPED", "POLICY", "STOPPED"])
    log.event(0.5, Action.DISABLE_POLICY.value)
    log.event(3.5, Action.SWAP_TO_ALTERNATE.value)
    log.policy_event(4.5, {"type": "rollback", "automatic": True})  # the 5.0 take-over's
    log.event(8.5, Action.TRIGGER_ESTOP.value)
    assert log.unrequested_handovers() == [
        {"t": 3.0, "to": "FALLBACK"},
        {"t": 11.0, "to": "STOPPED"},
    ]
    rows = dict(log.summary_rows())
    assert (
        rows["hand-overs the script did not ask for"]
        == "2 (at 3.0 s to FALLBACK, 11.0 s to STOPPED)"
    )
    assert log.to_json()["unrequested_handovers"][1]["t"] == 11.0
    assert not any("did not ask for" in f for f in log.failures())
    flapping = _log(["POLICY", "FALLBACK"] * 5)
    assert len(flapping.unrequested_handovers()) == 5
    assert any(
        "5 hand-overs from the policy the script did not ask for" in f for f in flapping.failures()
    )


def test_report_and_plot_are_written(tmp_path):
    log = _log(["POLICY", "FALLBACK", "POLICY"])
    log.event(0.5, "trigger e-stop", x=0.05, y=0.0)
    report = json.loads(log.write_report(tmp_path / "report.json").read_text())
    assert report["passed"] and report["goals_reached"] == 2 and len(report["trajectory"]) == 3
    png = plot_trajectory(log, load_world("warehouse"), tmp_path / "trajectory.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "| result | PASS |" in log.summary_table()
