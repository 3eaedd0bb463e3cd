"""Robot profiles: the one description of the robot every node and the simulators use (no rclpy).

A profile (config/robots/<robot>.yaml) gives footprint, limits, wheels and the lidar;
every field is checked at load time (`ProfileError` names file, field and reason).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlguard_common.profile_yaml import (
    ProfileReader,
    read_profile_yaml,
    resolve_robot_path,
)


@dataclass(frozen=True)
class LidarProfile:
    """A planar lidar: beams, field of view (rad), range limits (m), rate, noise, mount pose."""

    beams: int
    fov: float
    range_min: float
    range_max: float
    rate_hz: float
    noise_std: float
    dropout: float
    mount_x: float
    mount_y: float
    mount_z: float
    mount_yaw: float

    @property
    def angle_min(self) -> float:
        """Angle of the first beam in the sensor frame (rad)."""
        return -self.fov / 2.0 if not self.full_circle else -math.pi

    @property
    def full_circle(self) -> bool:
        """True for a 360 degree lidar (the last beam must not repeat the first)."""
        return self.fov >= 2.0 * math.pi - 1e-9

    @property
    def angle_increment(self) -> float:
        """Angle between beams (rad)."""
        if self.full_circle:
            return self.fov / self.beams
        return self.fov / max(self.beams - 1, 1)

    @property
    def angle_max(self) -> float:
        """Angle of the last beam (rad)."""
        return self.angle_min + self.angle_increment * (self.beams - 1)


@dataclass(frozen=True)
class RandomizationRanges:
    """Closed [low, high] ranges domain randomization samples from (absolute values)."""

    friction: tuple[float, float]
    mass: tuple[float, float]
    wheel_radius: tuple[float, float]
    actuator_delay: tuple[float, float]
    lidar_noise: tuple[float, float]
    lidar_dropout: tuple[float, float]


@dataclass(frozen=True)
class RobotProfile:
    """A differential-drive base: geometry, mass, wheel limits, lidar and randomization."""

    name: str
    footprint_radius: float
    base_height: float
    wheel_radius: float
    wheel_width: float
    wheel_separation: float
    wheel_mass: float
    mass: float
    max_wheel_speed: float
    max_wheel_torque: float
    wheel_friction: float
    actuator_delay: float
    caster_x: float
    lidar: LidarProfile
    randomization: RandomizationRanges
    source: str = ""

    @property
    def max_linear_velocity(self) -> float:
        """Top speed straight ahead (m/s): both wheels at their speed limit."""
        return self.max_wheel_speed * self.wheel_radius

    @property
    def max_angular_velocity(self) -> float:
        """Top turn rate on the spot (rad/s): wheels at opposite speed limits."""
        return 2.0 * self.max_wheel_speed * self.wheel_radius / self.wheel_separation


def load_robot_profile(path_or_name: str | Path) -> RobotProfile:
    """Load and validate a robot profile (a name in config/robots or a path)."""
    path = resolve_robot_path(path_or_name)
    return robot_profile_from_dict(read_profile_yaml(path), path)


def robot_profile_from_dict(data: Any, source: str | Path = "<dict>") -> RobotProfile:
    """Validate a robot profile mapping; `source` names it in errors."""
    r = ProfileReader(source, data)
    lidar_r = r.sub("lidar")
    range_min = lidar_r.number("range_min", positive=True)
    range_max = lidar_r.number("range_max", positive=True)
    if range_max <= range_min:
        raise lidar_r.error("range_max", f"must be above range_min ({range_min}), got {range_max}")
    lidar = LidarProfile(
        beams=lidar_r.integer("beams", minimum=1),
        fov=lidar_r.number("fov", positive=True, maximum=2.0 * math.pi + 1e-9),
        range_min=range_min,
        range_max=range_max,
        rate_hz=lidar_r.number("rate_hz", positive=True, maximum=1000.0),
        noise_std=lidar_r.number("noise_std", minimum=0.0),
        dropout=lidar_r.number("dropout", minimum=0.0, maximum=1.0),
        mount_x=lidar_r.number("mount_x"),
        mount_y=lidar_r.number("mount_y"),
        mount_z=lidar_r.number("mount_z", positive=True),
        mount_yaw=lidar_r.number("mount_yaw"),
    )
    rand_r = r.sub("randomization")
    randomization = RandomizationRanges(
        friction=rand_r.range("friction", minimum=0.0),
        mass=rand_r.range("mass", minimum=1e-3),
        wheel_radius=rand_r.range("wheel_radius", minimum=1e-3),
        actuator_delay=rand_r.range("actuator_delay", minimum=0.0),
        lidar_noise=rand_r.range("lidar_noise", minimum=0.0),
        lidar_dropout=rand_r.range("lidar_dropout", minimum=0.0),
    )
    if randomization.lidar_dropout[1] > 1.0:
        raise rand_r.error("lidar_dropout", "upper bound must be <= 1")
    footprint = r.number("footprint_radius", positive=True)
    separation = r.number("wheel_separation", positive=True)
    wheel_width = r.number("wheel_width", positive=True)
    if separation / 2.0 + wheel_width / 2.0 > footprint + 1e-9:
        raise r.error("wheel_separation", "wheels stick out of the footprint circle")
    caster_x = r.number("caster_x")
    if abs(caster_x) >= footprint:
        raise r.error("caster_x", f"must lie inside the footprint (|x| < {footprint})")
    return RobotProfile(
        name=r.string("name"),
        footprint_radius=footprint,
        base_height=r.number("base_height", positive=True),
        wheel_radius=r.number("wheel_radius", positive=True),
        wheel_width=wheel_width,
        wheel_separation=separation,
        wheel_mass=r.number("wheel_mass", positive=True),
        mass=r.number("mass", positive=True),
        max_wheel_speed=r.number("max_wheel_speed", positive=True),
        max_wheel_torque=r.number("max_wheel_torque", positive=True),
        wheel_friction=r.number("wheel_friction", positive=True),
        actuator_delay=r.number("actuator_delay", minimum=0.0, maximum=1.0),
        caster_x=caster_x,
        lidar=lidar,
        randomization=randomization,
        source=str(source),
    )
