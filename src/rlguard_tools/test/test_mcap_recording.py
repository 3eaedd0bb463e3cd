import math

import pytest
from geometry_msgs.msg import Twist
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from nav_msgs.msg import Odometry
from rclpy.serialization import serialize_message
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Float32, String

from rlguard_tools.mcap_recording import McapRecorder, MessageDefinitionError, message_definition


def test_schema_holds_every_nested_type_once():
    text = message_definition("nav_msgs/msg/Odometry")
    headers = [line for line in text.splitlines() if line.startswith("MSG: ")]
    assert len(headers) == len(set(headers))
    for needed in ("std_msgs/Header", "builtin_interfaces/Time", "geometry_msgs/Quaternion"):
        assert f"MSG: {needed}" in headers


def test_unknown_type_is_a_clear_error():
    with pytest.raises(MessageDefinitionError, match="no_pkg/Nothing"):
        message_definition("no_pkg/msg/Nothing")


def test_recorded_messages_read_back_with_the_mcap_reader(tmp_path):
    scan = LaserScan()
    scan.header.frame_id = "base_scan"
    scan.angle_min, scan.angle_increment, scan.range_max = -math.pi, 0.5, 3.5
    scan.ranges = [1.0, 2.0, float("inf")]
    odom = Odometry()
    odom.pose.pose.position.x = 1.5
    twist = Twist()
    twist.linear.x = 0.2
    path = tmp_path / "run.mcap"
    recorder = McapRecorder(path)
    topics = {
        "/scan": ("sensor_msgs/msg/LaserScan", scan),
        "/odom": ("nav_msgs/msg/Odometry", odom),
        "/cmd_vel": ("geometry_msgs/msg/Twist", twist),
        "/hybrid/mode": ("std_msgs/msg/String", String(data="POLICY")),
        "/safety/scale": ("std_msgs/msg/Float32", Float32(data=0.5)),
    }
    for i, (topic, (type_name, message)) in enumerate(topics.items()):
        recorder.add_topic(topic, type_name)
        recorder.write(topic, serialize_message(message), log_time_ns=1_000 + i)
    recorder.close()

    with open(path, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        decoded = {channel.topic: msg for _, channel, _, msg in reader.iter_decoded_messages()}
    assert set(decoded) == set(topics)
    assert list(decoded["/scan"].ranges)[:2] == [1.0, 2.0]
    assert decoded["/scan"].header.frame_id == "base_scan"
    assert decoded["/odom"].pose.pose.position.x == 1.5
    assert decoded["/cmd_vel"].linear.x == pytest.approx(0.2)
    assert decoded["/hybrid/mode"].data == "POLICY"
    assert recorder.counts["/scan"] == 1
