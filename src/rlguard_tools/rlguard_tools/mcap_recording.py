"""Write ROS 2 messages to an MCAP file that Foxglove and rosbag2 open (no rclpy here).

Messages arrive already serialized (CDR, as an rclpy subscription with ``raw=True``
gives them) and are stored with a ``ros2msg`` schema: the message's .msg text followed by
the definitions of every message type it uses, the layout rosbag2 writes.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import BinaryIO

from mcap.writer import Writer

PRIMITIVE_TYPES = frozenset(
    {
        "bool",
        "byte",
        "char",
        "float32",
        "float64",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "string",
        "wstring",
    }
)
SEPARATOR = "=" * 80


class MessageDefinitionError(LookupError):
    """A message type whose .msg file cannot be found."""


def _share_roots() -> list[Path]:
    roots = [
        Path(p) / "share" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p
    ]
    roots.append(Path(sys.prefix) / "share")
    roots.extend(sorted(Path("/opt/ros").glob("*/share")) if Path("/opt/ros").is_dir() else [])
    return roots


def message_file(type_name: str) -> Path:
    """The .msg file of ``pkg/msg/Type`` (or ``pkg/Type``)."""
    package, _, name = type_name.replace("/msg/", "/").partition("/")
    for root in _share_roots():
        candidate = root / package / "msg" / f"{name}.msg"
        if candidate.is_file():
            return candidate
    raise MessageDefinitionError(f"no .msg file for {type_name}")


def _dependencies(lines: list[str], package: str) -> list[str]:
    """Message types used by the fields of a definition (comments and constants removed)."""
    found = []
    for line in lines:
        base = re.sub(r"\[.*\]$", "", line.split()[0])
        base = re.sub(r"<=\d+$", "", base)
        if base in PRIMITIVE_TYPES:
            continue
        if base == "Header":
            base = "std_msgs/Header"
        elif "/" not in base:
            base = f"{package}/{base}"
        found.append(base.replace("/msg/", "/"))
    return found


def _is_constant(line: str) -> bool:
    parts = line.split(None, 1)
    return len(parts) == 2 and "=" in parts[1] and parts[0].split("[")[0] in PRIMITIVE_TYPES


def message_definition(type_name: str) -> str:
    """The full ros2msg schema text of a type: its .msg and every dependency's, once."""
    root = type_name.replace("/msg/", "/")
    text = message_file(root).read_text()
    parts = [text.rstrip("\n")]
    seen = {root}
    pending = [(root, text)]
    while pending:
        current, current_text = pending.pop(0)
        package = current.split("/")[0]
        lines = [
            line
            for line in (raw.split("#", 1)[0].strip() for raw in current_text.splitlines())
            if line and not _is_constant(line)
        ]
        for dependency in _dependencies(lines, package):
            if dependency in seen:
                continue
            seen.add(dependency)
            dep_text = message_file(dependency).read_text()
            parts.append(f"{SEPARATOR}\nMSG: {dependency}\n{dep_text.rstrip(chr(10))}")
            pending.append((dependency, dep_text))
    return "\n".join(parts) + "\n"


class McapRecorder:
    """Appends serialized ROS 2 messages to an MCAP file, one channel per topic."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._writer = Writer(self._stream)
        self._writer.start(profile="ros2", library="rlguard")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._sequence = 0
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, type_name: str) -> None:
        """Register a topic of ROS type ``pkg/msg/Type`` before writing to it."""
        if topic in self._channels:
            return
        if type_name not in self._schemas:
            self._schemas[type_name] = self._writer.register_schema(
                name=type_name, encoding="ros2msg", data=message_definition(type_name).encode()
            )
        self._channels[topic] = self._writer.register_channel(
            topic=topic, message_encoding="cdr", schema_id=self._schemas[type_name]
        )
        self.counts[topic] = 0

    def write(
        self, topic: str, serialized: bytes, log_time_ns: int, publish_time_ns: int | None = None
    ) -> None:
        """Append one CDR-serialized message of a registered topic."""
        self._sequence += 1
        self._writer.add_message(
            channel_id=self._channels[topic],
            log_time=log_time_ns,
            publish_time=publish_time_ns if publish_time_ns is not None else log_time_ns,
            data=serialized,
            sequence=self._sequence,
        )
        self.counts[topic] += 1

    def close(self) -> None:
        """Write the summary and close the file."""
        if not self._stream.closed:
            self._writer.finish()
            self._stream.close()
