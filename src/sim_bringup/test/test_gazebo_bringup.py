"""Static checks of the generated Gazebo files and the sim_bringup launch files.

What the launch files start, under the launch checker, is tested with the tools
(rlguard_tools/test/test_sim_bringup_launch.py).
"""

import ast
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from rlguard_common.profile_yaml import world_names
from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from sim_bringup.gazebo_gen import (
    GAZEBO_DIR,
    ROBOT_MODEL_NAME,
    check_bridge,
    generated_files,
    sdf_topics,
    stale_files,
    write_files,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
WORKSPACE = PACKAGE_DIR.parents[1]
LAUNCH_DIR = PACKAGE_DIR / "launch"
ROBOT_SDF = GAZEBO_DIR / "models" / ROBOT_MODEL_NAME / "model.sdf"
WORLD_SDFS = sorted((GAZEBO_DIR / "worlds").glob("*.sdf"))
REQUIRED_SYSTEMS = {
    "gz::sim::systems::Physics",
    "gz::sim::systems::UserCommands",
    "gz::sim::systems::SceneBroadcaster",
    "gz::sim::systems::Sensors",
}


def test_committed_gazebo_files_are_not_stale():
    assert stale_files() == [], "run: python -m sim_bringup.gazebo_gen"


def test_stale_check_notices_an_edit(tmp_path):
    write_files(tmp_path)
    assert stale_files(tmp_path) == []
    target = tmp_path / "worlds" / "empty.sdf"
    target.write_text(target.read_text().replace("0.5", "0.6"))
    (tmp_path / "bridge.yaml").unlink()
    assert stale_files(tmp_path) == ["worlds/empty.sdf", "bridge.yaml"]


def test_every_world_has_an_sdf_with_the_required_systems():
    assert [p.stem for p in WORLD_SDFS] == world_names()
    for path in WORLD_SDFS:
        root = ET.parse(path).getroot()
        assert root.tag == "sdf" and root.get("version") == "1.9"
        world = root.find("world")
        assert world is not None and world.get("name") == path.stem
        plugins = {p.get("name"): p for p in world.findall("plugin")}
        assert REQUIRED_SYSTEMS <= set(plugins)
        assert plugins["gz::sim::systems::Sensors"].findtext("render_engine") == "ogre2"
        description = load_world(path.stem)
        expected_models = (
            1  # ground plane
            + len(description.all_walls())
            + len(description.boxes)
            + len(description.cylinders)
            + len(description.moving_cylinders)
        )
        assert len(world.findall("model")) == expected_models


def test_no_fuel_or_remote_uris():
    for text in generated_files().values():
        lowered = text.lower()
        assert "fuel" not in lowered and "http" not in lowered and "<uri>" not in lowered


def test_robot_sdf_matches_the_profile():
    robot = load_robot_profile("default")
    model = ET.parse(ROBOT_SDF).getroot().find("model")
    assert model is not None and model.get("name") == ROBOT_MODEL_NAME
    drive = next(p for p in model.findall("plugin") if p.get("name").endswith("DiffDrive"))
    assert drive.findtext("frame_id") == "odom"
    assert drive.findtext("child_frame_id") == "base_footprint"
    assert float(drive.findtext("odom_publish_frequency")) == 50.0
    assert float(drive.findtext("wheel_separation")) == pytest.approx(robot.wheel_separation)
    assert float(drive.findtext("wheel_radius")) == pytest.approx(robot.wheel_radius)
    joints = {j.get("name") for j in model.findall("joint")}
    assert {drive.findtext("left_joint"), drive.findtext("right_joint")} <= joints
    sensor = model.find(".//sensor[@type='gpu_lidar']")
    assert sensor is not None
    assert sensor.findtext("gz_frame_id") == "base_scan"
    assert float(sensor.findtext("update_rate")) == robot.lidar.rate_hz
    assert int(sensor.findtext("lidar/scan/horizontal/samples")) == robot.lidar.beams
    assert float(sensor.findtext("lidar/range/max")) == robot.lidar.range_max
    urdf = ET.parse(ROBOT_SDF.parent / "robot.urdf").getroot()
    scan_joint = urdf.find("joint[@name='base_scan_joint']")
    assert scan_joint.find("origin").get("xyz") == "-0.032 0 0.172"


@pytest.mark.parametrize("bridge", ["bridge.yaml", "bridge_stamped.yaml"])
def test_bridge_topics_and_types_match_the_sdf(bridge):
    entries = yaml.safe_load((GAZEBO_DIR / bridge).read_text())
    topics = sdf_topics(ROBOT_SDF.read_text(), WORLD_SDFS[0].read_text())
    assert set(topics) == {"clock", "scan", "odom", "tf", "cmd_vel"}
    assert check_bridge(entries, topics) == []
    directions = {e["ros_topic_name"].strip("/"): e["direction"] for e in entries}
    assert directions == {
        "clock": "GZ_TO_ROS",
        "scan": "GZ_TO_ROS",
        "odom": "GZ_TO_ROS",
        "tf": "GZ_TO_ROS",
        "cmd_vel": "ROS_TO_GZ",
    }
    cmd = next(e for e in entries if e["ros_topic_name"] == "cmd_vel")
    stamped = bridge == "bridge_stamped.yaml"
    assert cmd["ros_type_name"].endswith("TwistStamped") == stamped


def test_bridge_check_finds_wrong_pairs_topics_and_gaps():
    topics = sdf_topics(ROBOT_SDF.read_text(), WORLD_SDFS[0].read_text())
    entries = yaml.safe_load((GAZEBO_DIR / "bridge.yaml").read_text())
    entries[1]["gz_type_name"] = "gz.msgs.Odometry"  # scan with a wrong type
    entries[2]["gz_topic_name"] = "wheel_odom"  # not in the SDF
    entries[4]["direction"] = "SIDEWAYS"
    del entries[3]  # tf no longer bridged
    problems = "\n".join(check_bridge(entries, topics))
    assert "cannot translate sensor_msgs/msg/LaserScan <-> gz.msgs.Odometry" in problems
    assert "'wheel_odom' is not in the SDF" in problems
    assert "unknown direction 'SIDEWAYS'" in problems
    assert "'tf' is not bridged" in problems


IGN = shutil.which("ign")


@pytest.mark.skipif(
    IGN is None,
    reason="`ign` not installed (Debian: apt-get install ignition-tools libsdformat-dev)",
)
def test_generated_sdf_passes_gazebo_checker(tmp_path):
    for path in [*WORLD_SDFS, ROBOT_SDF]:
        result = subprocess.run(
            [IGN, "sdf", "-k", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and "Valid" in result.stdout, (path, result.stderr)
    broken = tmp_path / "broken.sdf"
    broken.write_text(ROBOT_SDF.read_text().replace("<pose>0 0.08 0.033", "<pose>0 0.08", 1))
    result = subprocess.run([IGN, "sdf", "-k", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0  # the checker really checks


LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py"))


def test_launch_files_compile_and_document_every_argument():
    assert [p.name for p in LAUNCH_FILES] == ["gazebo.launch.py", "mujoco.launch.py"]
    for path in LAUNCH_FILES:
        source = path.read_text()
        compile(source, str(path), "exec")
        tree = ast.parse(source)
        generate = next(
            n
            for n in tree.body
            if isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
        )
        assert ast.unparse(generate.returns) == "LaunchDescription"
        declared = set()
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", "") == "DeclareLaunchArgument"
            ):
                keywords = {k.arg for k in node.keywords}
                assert "description" in keywords, (path.name, ast.unparse(node))
                declared.add(node.args[0].value)
        # launch/sim.launch.py passes these to both simulator launch files.
        assert {"world", "robot", "use_stamped", "headless"} <= declared
