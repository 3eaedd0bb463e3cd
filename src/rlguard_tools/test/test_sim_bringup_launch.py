"""What sim_bringup's launch files start, checked by the launch checker on a fake install."""

from pathlib import Path

import pytest

from rlguard_tools.launch_check import LaunchChecker

WORKSPACE = Path(__file__).resolve().parents[3]
PACKAGE_DIR = WORKSPACE / "src" / "sim_bringup"
LAUNCH_FILES = sorted((PACKAGE_DIR / "launch").glob("*.launch.py"))


def fake_install(tmp_path: Path) -> Path:
    """A workspace whose install/ mirrors setup.py's data_files for sim_bringup."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    for name in ("src", "config", "launch"):
        (workspace / name).symlink_to(WORKSPACE / name)
    share = workspace / "install" / "sim_bringup" / "share" / "sim_bringup"
    (share / "config").mkdir(parents=True)
    (share / "config" / "mujoco_sim.yaml").symlink_to(WORKSPACE / "config" / "mujoco_sim.yaml")
    (share / "config" / "robots").symlink_to(WORKSPACE / "config" / "robots")
    for name in ("worlds", "launch", "gazebo"):
        (share / name).symlink_to(PACKAGE_DIR / name)
    return workspace


@pytest.mark.parametrize("world", ["warehouse", "dynamic"])
def test_launch_files_reference_only_existing_things(tmp_path, world):
    workspace = fake_install(tmp_path)
    for use_stamped in ("false", "true"):
        checker = LaunchChecker(workspace)
        for path in LAUNCH_FILES:
            checker.check_file(
                workspace / "src" / "sim_bringup" / "launch" / path.name,
                {"world": world, "use_stamped": use_stamped},
            )
        report = checker.report
        assert report.problems == []
        started = {(package, executable) for package, executable, _ in report.nodes}
        assert ("sim_bringup", "mujoco_sim") in started
        assert ("ros_gz_sim", "create") in started
        assert ("ros_gz_bridge", "parameter_bridge") in started
        assert ("robot_state_publisher", "robot_state_publisher") in started
        assert "ros_gz_sim" in report.external_packages


def test_launch_check_catches_missing_files(tmp_path):
    workspace = fake_install(tmp_path)
    share = workspace / "install" / "sim_bringup" / "share" / "sim_bringup"
    (share / "config" / "mujoco_sim.yaml").unlink()
    checker = LaunchChecker(workspace)
    checker.check_file(workspace / "src" / "sim_bringup" / "launch" / "mujoco.launch.py")
    assert any("mujoco_sim.yaml" in problem for problem in checker.report.problems)
    # An OpaqueFunction that raises (as under the real launch) is a problem, not a crash.
    checker = LaunchChecker(workspace)
    checker.check_file(
        workspace / "src" / "sim_bringup" / "launch" / "gazebo.launch.py", {"world": "nowhere"}
    )
    assert any(
        "OpaqueFunction fails: ProfileError" in p and "nowhere" in p
        for p in checker.report.problems
    ), checker.report.problems
