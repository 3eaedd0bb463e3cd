"""Deceleration-aware collision guard for a unicycle command (v, w); no rclpy.

A command (v, w) held at scale s moves the robot along one fixed arc (or a straight line,
or a turn in place). Measure progress along it by p, the time the unscaled command would
need: at scale s, p grows at rate s. Braking both axes together at the emergency
deceleration shrinks s at rate b = min(a_v/|v|, a_w/|w|), so reacting for `reaction_time`
τ and then braking covers s·τ + s²/(2b) of p. With P the free p before the inflated
footprint first touches a scan point, the largest safe scale is

    s = -b·τ + sqrt((b·τ)² + 2·b·P)      (v = s·|v| is the textbook bound with d = |v|·P)

Contacts are found in closed form: seen from the robot, each obstacle point moves on a
circle around the instantaneous centre of rotation (a line when w = 0), which is
intersected with the boundary pieces of the footprint (segments and circles). A point
already inside the inflated footprint blocks only motion that brings it deeper, so moving
away from a wall is always allowed (the robot is never trapped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from safety_controller.footprint import Footprint
from safety_controller.limits import TINY

TWO_PI = 2.0 * math.pi
# Radii of curvature beyond this are treated as straight lines (error < 1 mm over 10 m).
STRAIGHT_RADIUS = 1e5
# Samples along the path that check touching points for a later contact.
COMEBACK_SAMPLES = 32
# A point within this distance of the inflated outline counts as touching it.
CONTACT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class GuardResult:
    """Largest safe scale of a command and the free path that bounds it."""

    scale: float  # in [0, 1]
    free_path: float  # p (seconds of the unscaled command) before contact; inf when none


def pose_along(v: float, w: float, p: float) -> tuple[float, float, float]:
    """Robot pose (x, y, yaw) in the start frame after following (v, w) for time p."""
    theta = w * p
    if abs(w) < 1e-12 or abs(v / w) > STRAIGHT_RADIUS:
        return v * p * math.cos(theta / 2.0), v * p * math.sin(theta / 2.0), theta
    radius = v / w
    return radius * math.sin(theta), radius * (1.0 - math.cos(theta)), theta


def to_moved_frame(points: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    """Express start-frame points in the frame of a robot that moved to (x, y, yaw)."""
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = points[:, 0] - x, points[:, 1] - y
    return np.column_stack((c * dx + s * dy, -s * dx + c * dy))


def braking_rate(v: float, w: float, decel: tuple[float, float]) -> float:
    """Rate b at which the scale of (v, w) can fall when both axes brake together."""
    rate = math.inf
    if v != 0.0:
        rate = min(rate, decel[0] / abs(v))
    if w != 0.0:
        rate = min(rate, decel[1] / abs(w))
    return rate


def safe_scale(free_path: float, braking: float, reaction_time: float) -> float:
    """Largest s in [0, 1] with s·τ + s²/(2b) <= free_path."""
    if free_path <= 0.0:
        return 0.0
    if not math.isfinite(free_path):
        return 1.0
    bt = braking * reaction_time
    return min(1.0, max(0.0, -bt + math.sqrt(bt * bt + 2.0 * braking * free_path)))


def _first_contact_arc(points: np.ndarray, footprint: Footprint, v: float, w: float) -> np.ndarray:
    """Smallest p >= 0 at which each point meets the inflated outline, moving on an arc."""
    radius = v / w
    centre = np.array([0.0, radius])
    rel = points - centre
    dist = np.hypot(rel[:, 0], rel[:, 1])
    alpha0 = np.arctan2(rel[:, 1], rel[:, 0])
    direction = 1.0 if w > 0 else -1.0
    best = np.full(points.shape[0], np.inf)

    def consider(hit_angle: np.ndarray, valid: np.ndarray) -> None:
        delta = np.mod(direction * (alpha0[:, None] - hit_angle), TWO_PI)
        p = np.where(valid, delta / abs(w), np.inf)
        np.minimum(best, p.min(axis=1), out=best)

    segments = footprint.segments
    if segments.shape[0]:
        start = segments[:, 0, :] - centre  # (S, 2), relative to the centre
        edge = segments[:, 1, :] - segments[:, 0, :]
        ee = np.sum(edge * edge, axis=1)[None, :]
        ef = np.sum(edge * start, axis=1)[None, :]
        ff = np.sum(start * start, axis=1)[None, :]
        disc = ef * ef - ee * (ff - (dist * dist)[:, None])
        root = np.sqrt(np.maximum(disc, 0.0))
        for sign in (-1.0, 1.0):
            u = (-ef + sign * root) / ee
            valid = (disc >= 0.0) & (u >= 0.0) & (u <= 1.0)
            hx = start[None, :, 0] + u * edge[None, :, 0]
            hy = start[None, :, 1] + u * edge[None, :, 1]
            consider(np.arctan2(hy, hx), valid)

    circles = footprint.circles
    if circles.shape[0]:
        offset = circles[:, :2] - centre  # (C, 2)
        link = np.hypot(offset[:, 0], offset[:, 1])[None, :]
        base = np.arctan2(offset[:, 1], offset[:, 0])[None, :]
        r = circles[:, 2][None, :]
        d = dist[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            cos_half = (d * d + link * link - r * r) / (2.0 * d * link)
        valid = (d * link > 0.0) & (np.abs(cos_half) <= 1.0)
        half = np.arccos(np.clip(np.nan_to_num(cos_half), -1.0, 1.0))
        consider(base - half, valid)
        consider(base + half, valid)
    return best


def _first_contact_straight(points: np.ndarray, footprint: Footprint, v: float) -> np.ndarray:
    """Smallest p >= 0 at which each point meets the inflated outline, moving straight."""
    x0, y0 = points[:, 0][:, None], points[:, 1][:, None]
    best = np.full(points.shape[0], np.inf)

    def consider(hit_x: np.ndarray, valid: np.ndarray) -> None:
        with np.errstate(over="ignore"):
            p = (x0 - hit_x) / v
        p = np.where(valid & (p >= 0.0), p, np.inf)
        np.minimum(best, p.min(axis=1), out=best)

    segments = footprint.segments
    if segments.shape[0]:
        ax, ay = segments[:, 0, 0][None, :], segments[:, 0, 1][None, :]
        dx = (segments[:, 1, 0] - segments[:, 0, 0])[None, :]
        dy = (segments[:, 1, 1] - segments[:, 0, 1])[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (y0 - ay) / dy
        valid = (dy != 0.0) & (u >= 0.0) & (u <= 1.0)
        consider(ax + np.nan_to_num(u) * dx, valid)

    circles = footprint.circles
    if circles.shape[0]:
        kx, ky, r = (circles[:, i][None, :] for i in range(3))
        h_sq = r * r - (y0 - ky) ** 2
        valid = h_sq >= 0.0
        h = np.sqrt(np.maximum(h_sq, 0.0))
        consider(kx - h, valid)
        consider(kx + h, valid)
    return best


def first_contacts(points: np.ndarray, footprint: Footprint, v: float, w: float) -> np.ndarray:
    """Per point, the p at which following (v, w) first brings it onto the outline."""
    if points.shape[0] == 0 or (v == 0.0 and w == 0.0):
        return np.full(points.shape[0], np.inf)
    if abs(w) < 1e-12 or abs(v / w) > STRAIGHT_RADIUS:
        return _first_contact_straight(points, footprint, v)
    return _first_contact_arc(points, footprint, v, w)


def free_path(
    points: np.ndarray,
    footprint: Footprint,
    v: float,
    w: float,
    horizon: float = math.inf,
    clearance: np.ndarray | None = None,
) -> float:
    """Free p along (v, w) before the inflated footprint touches a point (inf if none).

    Only contacts before `horizon` matter; later ones return inf. Points already touching
    or inside the outline give 0 if the motion brings them deeper, and are ignored
    otherwise. `clearance` may pass precomputed footprint.clearance(points).
    """
    if v == 0.0 and w == 0.0 or points.shape[0] == 0:
        return math.inf
    reach = footprint.bounding_radius + abs(v) * horizon
    if math.isfinite(reach):
        near = np.einsum("ij,ij->i", points, points) <= reach * reach
        points = points[near]
        if clearance is not None:
            clearance = clearance[near]
        if points.shape[0] == 0:
            return math.inf
    if clearance is None:
        clearance = footprint.clearance(points)
    touching = clearance <= CONTACT_TOLERANCE
    if np.any(touching):
        # Step a tenth of a millimetre (or the rotation moving the outline as far) along
        # the motion and see whether those points got deeper.
        speed = max(abs(v), abs(w) * footprint.bounding_radius, 1e-12)
        step = 1e-4 / speed
        moved = to_moved_frame(points[touching], *pose_along(v, w, step))
        if np.any(footprint.clearance(moved) < clearance[touching] - 1e-12):
            return 0.0
        comeback = _return_of_touching(
            points[touching], clearance[touching], footprint, v, w, horizon
        )
        points = points[~touching]
    else:
        comeback = math.inf
    contact = float(np.min(first_contacts(points, footprint, v, w), initial=math.inf))
    contact = min(contact, comeback)
    return contact if contact < horizon else math.inf


def _return_of_touching(
    points: np.ndarray,
    clearance: np.ndarray,
    footprint: Footprint,
    v: float,
    w: float,
    horizon: float,
) -> float:
    """Free p for touching points the motion first moves away from.

    Turning can swing another part of the outline (a corner) back onto them; the path is
    sampled up to `horizon` and the sample before the first one that is deeper than now
    is the free path (conservative by one sample).
    """
    if not math.isfinite(horizon):
        return math.inf
    samples = np.linspace(0.0, horizon, COMEBACK_SAMPLES + 1)
    for index in range(1, samples.size):
        moved = to_moved_frame(points, *pose_along(v, w, float(samples[index])))
        if np.any(footprint.clearance(moved) < clearance - 1e-12):
            return float(samples[index - 1])
    return math.inf


def guard_command(
    points: np.ndarray,
    footprint: Footprint,
    v: float,
    w: float,
    reaction_time: float,
    decel: tuple[float, float],
    clearance: np.ndarray | None = None,
) -> GuardResult:
    """Largest scale s in [0, 1] so (s·v, s·w) can react, brake and stay clear of `points`.

    `decel` holds the emergency deceleration magnitudes [linear, angular] (positive).
    """
    v = v if abs(v) >= TINY else 0.0
    w = w if abs(w) >= TINY else 0.0
    if v == 0.0 and w == 0.0:
        return GuardResult(scale=1.0, free_path=math.inf)
    braking = braking_rate(v, w, decel)
    # At full scale the robot needs τ + 1/(2b) of p to stop; contacts beyond are irrelevant.
    horizon = reaction_time + 1.0 / (2.0 * braking)
    path = free_path(points, footprint, v, w, horizon * 1.001, clearance)
    return GuardResult(scale=safe_scale(path, braking, reaction_time), free_path=path)
