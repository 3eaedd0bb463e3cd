"""The campaign's worlds: the shipped ones by name, and generated moving-obstacle scenes."""

from __future__ import annotations

from typing import Any

from rlguard_common.world import World, load_world, world_from_dict
from rlguard_tools.campaign.classes import MOVER_WORLDS


def _mover(radius: float, speed: float, *waypoints: tuple[float, float]) -> dict[str, Any]:
    return {"radius": radius, "speed": speed, "waypoints": [list(p) for p in waypoints]}


def mover_world_data(name: str) -> dict[str, Any]:
    """The world mapping of a generated moving-obstacle scene (see MOVER_DESCRIPTIONS)."""
    base: dict[str, Any] = {
        "name": name,
        "arena": {"size": [8.0, 4.0], "wall_thickness": 0.1},
        "obstacle_height": 0.5,
        "start": {"x": -3.0, "y": 0.0, "yaw": 0.0},
        "goals": [[3.0, 0.0]],
        "goal_tolerance": 0.25,
    }
    if name == "crossing":
        base["moving_cylinders"] = [
            _mover(0.2, 0.3, (-1.0, -1.7), (-1.0, 1.7)),
            _mover(0.25, 0.45, (0.8, 1.7), (0.8, -1.7)),
            _mover(0.2, 0.4, (2.2, -1.7), (2.2, 1.7)),
        ]
    elif name == "headon":
        base["arena"]["size"] = [8.0, 1.2]
        base["start"] = {"x": -3.4, "y": 0.0, "yaw": 0.0}
        base["goals"] = [[3.4, 0.0]]
        base["moving_cylinders"] = [_mover(0.2, 0.35, (3.6, 0.05), (-3.6, -0.05))]
    elif name == "overtaking":
        base["arena"]["size"] = [8.0, 2.0]
        base["start"] = {"x": -2.0, "y": 0.0, "yaw": 0.0}
        base["moving_cylinders"] = [
            _mover(0.2, 0.45, (-3.6, 0.0), (3.6, 0.0), (3.6, 0.7), (-3.6, 0.7)),
        ]
    elif name == "crowd":
        base["arena"]["size"] = [6.0, 6.0]
        base["start"] = {"x": 0.0, "y": 0.0, "yaw": 0.0}
        base["goals"] = [[2.5, 2.5]]
        base["moving_cylinders"] = [
            _mover(0.2, 0.25, (-2.5, -2.0), (2.5, -2.0), (2.5, 2.0), (-2.5, 2.0)),
            _mover(0.2, 0.45, (-2.5, 0.5), (2.5, -0.5)),
            _mover(0.25, 0.35, (0.5, 2.5), (-0.5, -2.5)),
            _mover(0.15, 0.4, (-2.0, 2.5), (2.0, -2.5), (2.0, 2.5)),
            _mover(0.2, 0.3, (1.5, 1.5), (-1.5, 1.5), (-1.5, -1.5), (1.5, -1.5)),
        ]
    else:
        raise ValueError(f"unknown generated mover world {name!r}")
    return base


def load_campaign_world(name: str) -> World:
    """A world of the campaign: a shipped one by name, or a generated mover scene."""
    if name in MOVER_WORLDS and name != "dynamic":
        return world_from_dict(mover_world_data(name), f"<campaign:{name}>")
    return load_world(name)
