"""Adversarial command streams: what each episode's robot asks the safety filter for."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rlguard_tools.campaign.ground_truth import nearest_obstacle_point
from rlguard_tools.campaign.settings import CONTROL_PERIOD, CORRUPT_VALUES, JITTER_PERIOD
from safety_controller.limits import Velocity
from sim_bringup.sim_core import ObstacleGeometry


@dataclass(frozen=True)
class StreamInput:
    """What an adversarial stream may look at: ground truth included."""

    time: float
    pose: tuple[float, float, float]
    geometry: ObstacleGeometry
    max_velocity: tuple[float, float]
    movers: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))  # x, y, vx, vy, r


class CommandStream:
    """A source of requests and control periods for one episode."""

    name = "base"
    from_world_start = False  # start the episode at the world's start pose

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def command(self, obs: StreamInput) -> Velocity:
        """The request at this step."""
        raise NotImplementedError

    def period(self) -> float:
        """Time until the next control step (s)."""
        return CONTROL_PERIOD


class RandomStream(CommandStream):
    """Piecewise-constant random requests up to 1.5x the limits, some at the corners."""

    name = "random"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._until = -math.inf
        self._request: Velocity = (0.0, 0.0)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        if obs.time >= self._until:
            self._until = obs.time + float(self.rng.uniform(0.05, 1.0))
            vmax, wmax = obs.max_velocity
            if self.rng.random() < 0.3:
                v, w = self.rng.choice([-1.0, 0.0, 1.0], size=2)
                self._request = (float(v) * vmax, float(w) * wmax)
            else:
                self._request = (
                    float(self.rng.uniform(-1.5, 1.5)) * vmax,
                    float(self.rng.uniform(-1.5, 1.5)) * wmax,
                )
        return self._request


class FullSpeedStream(CommandStream):
    """One constant full-speed request: forward or reverse, straight or a gentle curve."""

    name = "full_speed"

    def __init__(self, rng: np.random.Generator, direction: float | None = None) -> None:
        super().__init__(rng)
        forward = rng.random() < 0.7
        self._direction = direction if direction is not None else (1.0 if forward else -1.0)
        self._turn = 0.0 if rng.random() < 0.5 else float(rng.uniform(-0.3, 0.3))

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._direction * obs.max_velocity[0], self._turn * obs.max_velocity[1]


class AimNearestStream(CommandStream):
    """Full speed at the nearest obstacle (ground truth), with the front or the rear."""

    name = "aim_nearest"

    def __init__(self, rng: np.random.Generator, direction: float | None = None) -> None:
        super().__init__(rng)
        forward = rng.random() < 0.7
        self._direction = direction if direction is not None else (1.0 if forward else -1.0)
        self._wobble = float(rng.uniform(-0.3, 0.3))

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        x, y, yaw = obs.pose
        target = nearest_obstacle_point(np.array([x, y]), obs.geometry)
        heading = yaw if self._direction > 0 else yaw + math.pi
        bearing = math.remainder(math.atan2(target[1] - y, target[0] - x) - heading, 2 * math.pi)
        wmax = obs.max_velocity[1]
        turn = float(np.clip(3.0 * bearing + self._wobble, -wmax, wmax))
        return self._direction * obs.max_velocity[0], turn


class OscillatingStream(CommandStream):
    """Bang-bang or sinusoidal requests up to 1.5x the limits (0.2-10 Hz)."""

    name = "oscillating"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._bang = bool(rng.random() < 0.5)
        self._amplitude = rng.uniform(0.4, 1.5, size=2) * rng.choice([0.0, 1.0, 1.0], size=2)
        if not np.any(self._amplitude):
            self._amplitude[0] = 1.0
        self._bias = rng.uniform(-0.5, 0.5, size=2)
        self._frequency = rng.uniform(0.2, 10.0 if self._bang else 4.0, size=2)
        self._phase = rng.uniform(0.0, 2.0 * math.pi, size=2)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        wave = np.sin(2.0 * math.pi * self._frequency * obs.time + self._phase)
        if self._bang:
            wave = np.where(wave >= 0.0, 1.0, -1.0)
        value = (self._bias + self._amplitude * wave) * np.asarray(obs.max_velocity)
        return float(value[0]), float(value[1])


class NonFiniteStream(CommandStream):
    """Random or aimed requests laced with NaN, +-inf and huge or denormal values."""

    name = "nonfinite"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        base = RandomStream if rng.random() < 0.5 else AimNearestStream
        self._base = base(rng)
        self._burst = 0

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        v, w = self._base.command(obs)
        rng = self.rng
        if self._burst == 0 and rng.random() < 0.15:
            self._burst = int(rng.integers(1, 20))
        if self._burst > 0:
            self._burst -= 1
            which = int(rng.integers(3))
            if which in (0, 2):
                v = float(CORRUPT_VALUES[int(rng.integers(len(CORRUPT_VALUES)))])
            if which in (1, 2):
                w = float(CORRUPT_VALUES[int(rng.integers(len(CORRUPT_VALUES)))])
        return v, w


class JitterStream(CommandStream):
    """Random or aimed requests at irregular control periods (JITTER_PERIOD)."""

    name = "jitter"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        base = RandomStream if rng.random() < 0.5 else AimNearestStream
        self._base = base(rng)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._base.command(obs)

    def period(self) -> float:
        """A control period drawn uniformly from JITTER_PERIOD."""
        return float(self.rng.uniform(*JITTER_PERIOD))


class DriveStream(CommandStream):
    """Driving into things: aim_nearest (half), full_speed or random requests."""

    name = "drive"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        pick = rng.random()
        base = AimNearestStream if pick < 0.5 else FullSpeedStream if pick < 0.75 else RandomStream
        self._base = base(rng)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._base.command(obs)


class ReverseStream(CommandStream):
    """Reversing into walls: the rear aimed at the nearest obstacle, full reverse, random."""

    name = "reverse"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        pick = rng.random()
        if pick < 0.5:
            self._base: CommandStream = AimNearestStream(rng, direction=-1.0)
        elif pick < 0.8:
            self._base = FullSpeedStream(rng, direction=-1.0)
        else:
            self._base = RandomStream(rng)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._base.command(obs)


class AlternatingStream(CommandStream):
    """Full forward / full reverse requests, flipped every 0.05-0.5 s (some with a turn)."""

    name = "alternating"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._half = float(rng.choice([0.05, 0.1, 0.15, 0.25, 0.5]))
        self._turn = float(rng.choice([0.0, 0.0, 1.0, -1.0]))
        self._turn_flips = bool(rng.random() < 0.5)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        sign = 1.0 if int(obs.time / self._half + 1e-9) % 2 == 0 else -1.0
        turn = self._turn * (sign if self._turn_flips else 1.0)
        return sign * obs.max_velocity[0], turn * obs.max_velocity[1]


class AimMoverStream(CommandStream):
    """Full speed at where the nearest mover will be (ground truth), front or rear."""

    name = "aim_mover"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._direction = 1.0 if rng.random() < 0.8 else -1.0
        self._lead = float(rng.uniform(0.0, 2.0))  # s of the mover's motion aimed ahead

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        x, y, yaw = obs.pose
        if not len(obs.movers):
            return self._direction * obs.max_velocity[0], 0.0
        distances = np.hypot(obs.movers[:, 0] - x, obs.movers[:, 1] - y)
        mover = obs.movers[int(np.argmin(distances))]
        target = mover[:2] + self._lead * mover[2:4]
        heading = yaw if self._direction > 0 else yaw + math.pi
        bearing = math.remainder(math.atan2(target[1] - y, target[0] - x) - heading, 2 * math.pi)
        wmax = obs.max_velocity[1]
        return self._direction * obs.max_velocity[0], float(np.clip(3.0 * bearing, -wmax, wmax))


class IdleStream(CommandStream):
    """Zero requests: a robot standing still (movers may still hit it)."""

    name = "idle"

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return 0.0, 0.0


class MoverStream(CommandStream):
    """Among movers: cruising from the world's start, chasing a mover, aiming, random, still."""

    name = "movers"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        pick = rng.random()
        if pick < 0.3:
            self._base: CommandStream = FullSpeedStream(rng, direction=1.0)
            self.from_world_start = True
        elif pick < 0.6:
            self._base = AimMoverStream(rng)
        elif pick < 0.75:
            self._base = AimNearestStream(rng)
        elif pick < 0.9:
            self._base = RandomStream(rng)
        else:
            self._base = IdleStream(rng)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._base.command(obs)


STREAM_TYPES: dict[str, type[CommandStream]] = {
    cls.name: cls
    for cls in (
        RandomStream,
        FullSpeedStream,
        AimNearestStream,
        OscillatingStream,
        NonFiniteStream,
        JitterStream,
        DriveStream,
        ReverseStream,
        AlternatingStream,
        AimMoverStream,
        IdleStream,
        MoverStream,
    )
}
