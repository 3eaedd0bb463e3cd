import json

from sim_bringup.demo_report import Action, DemoLog, DemoScript, Sample, plot_trajectory
from sim_bringup.profiles import load_world


def test_script_runs_its_steps_in_order_with_delays():
    script = DemoScript(swap_delay=3.0, estop_delay=2.0, estop_hold=1.0)
    assert script.step(0.0, 0) == [Action.ENABLE_POLICY]
    assert script.step(5.0, 0) == []
    assert script.step(10.0, 1) == [Action.DISABLE_POLICY]
    assert script.step(20.0, 2) == [Action.REENABLE_POLICY]
    assert script.step(22.9, 2) == []
    assert script.step(23.0, 2) == [Action.SWAP_TO_ALTERNATE]
    assert script.step(30.0, 3) == [Action.SWAP_TO_PRIMARY]
    assert script.step(32.0, 3) == [Action.TRIGGER_ESTOP]
    assert script.step(32.5, 3) == []
    assert script.step(33.0, 4) == [Action.RESET_ESTOP]
    assert script.pending() == [] and script.step(99.0, 5) == []


def test_script_never_skips_a_step_when_goals_come_fast():
    script = DemoScript(swap_delay=3.0)
    script.step(0.0, 0)
    assert script.step(1.0, 3) == [Action.DISABLE_POLICY, Action.REENABLE_POLICY]
    assert script.step(2.0, 4) == []
    assert script.step(4.0, 4) == [Action.SWAP_TO_ALTERNATE, Action.SWAP_TO_PRIMARY]
    assert Action.RESET_ESTOP in script.pending()


def _log(modes, goals_reached=2, collisions=0):
    log = DemoLog(world="empty", goals=[(1.0, 0.0), (2.0, 0.0)], collisions=collisions)
    for i, mode in enumerate(modes):
        log.add_sample(Sample(t=float(i), x=0.1 * i, y=0.0, mode=mode, speed=0.1, scale=1.0))
    log.goal_times = [1.0, 2.0][:goals_reached]
    return log


def test_log_passes_only_with_every_goal_no_collision_and_both_modes():
    assert _log(["POLICY", "FALLBACK", "POLICY"]).failures() == []
    assert "reached 1 of 2 goals" in _log(["POLICY", "FALLBACK"], goals_reached=1).failures()
    assert "1 collision(s)" in _log(["POLICY", "FALLBACK"], collisions=1).failures()
    assert any("FALLBACK" in f for f in _log(["POLICY", "POLICY"]).failures())


def test_time_per_mode_path_length_and_mode_changes():
    log = _log(["POLICY", "POLICY", "FALLBACK", "FALLBACK", "POLICY"])
    assert log.time_per_mode() == {"POLICY": 2.0, "FALLBACK": 2.0}
    assert abs(log.path_length() - 0.4) < 1e-9
    assert [(a, b) for _, a, b in log.mode_changes] == [
        ("-", "POLICY"), ("POLICY", "FALLBACK"), ("FALLBACK", "POLICY"),
    ]  # fmt: skip


def test_report_and_plot_are_written(tmp_path):
    log = _log(["POLICY", "FALLBACK", "POLICY"])
    log.event(0.5, "trigger e-stop", x=0.05, y=0.0)
    report = json.loads(log.write_report(tmp_path / "report.json").read_text())
    assert report["passed"] and report["goals_reached"] == 2 and len(report["trajectory"]) == 3
    png = plot_trajectory(log, load_world("warehouse"), tmp_path / "trajectory.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "| result | PASS |" in log.summary_table()
