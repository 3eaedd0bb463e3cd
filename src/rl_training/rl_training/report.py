"""An evaluation's report: its data, the Markdown table, JSON, plots and the policy card.

`EvaluationReport` holds the per world and mode summaries, the gate verdict, the stack
check (when the stack ran beside policy_safety and dwa) and every episode;
`write_outputs` writes evaluation.json, evaluation.md and PNG plots (matplotlib, Agg), and
`record_in_card` stores the summary and verdict in the policy file's card.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_policy_node.policy_loader import load_policy, save_policy
from rl_training.episodes import DEFAULT_SUCCESS_THRESHOLD, EpisodeResult
from rl_training.mover_scenes import FAMILIES
from rl_training.world_families import STATIC_FAMILIES
from rlguard_common.world import load_world


@dataclass
class EvaluationReport:
    """Per world and mode summaries, the gate verdict and all episodes."""

    model: str
    worlds: list[str]
    modes: list[str]
    episodes_per_world: int
    seed: int
    summary: dict[str, dict[str, dict[str, Any]]]
    time_ratio_vs_dwa: dict[str, float | None]
    gate: dict[str, Any]
    baseline: str  # "dwa+grid" (the fallback with grid guidance), "dwa" (without), "not run"
    wall_time_s: float
    episodes: list[EpisodeResult]
    # `episodes.stack_check`: the stack's success against the better of policy_safety and
    # dwa per world (None: not all three ran).
    stack_check: dict[str, Any] | None = None

    def to_dict(self, with_trajectories: bool = False) -> dict[str, Any]:
        """JSON-ready data (trajectories left out unless asked for)."""
        data = asdict(self)
        if not with_trajectories:
            for episode in data["episodes"]:
                episode.pop("trajectory", None)
        return data


def _fmt(value: Any, digits: int = 2) -> str:
    """A table cell: "-" for None, floats to `digits` places."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def arbiter_cell(stats: dict[str, Any]) -> str:
    """The compact arbiter cell of a summary: each mode's initial and mean share of the
    time it drove (modes that never drove left out), then the mean hand-overs per episode,
    e.g. "P 0.82 F 0.18; 1.5"; "-" for a mode without an arbiter."""
    fractions = stats.get("mode_time_fraction")
    if not fractions:
        return "-"
    shares = " ".join(f"{mode[0]} {share:.2f}" for mode, share in fractions.items() if share > 0)
    return f"{shares}; {stats.get('handovers_mean', 0.0):.1f}"


def markdown_table(report: EvaluationReport) -> str:
    """The evaluation table (one row per world and mode) as Markdown.

    When an arbitrated mode (the stack) ran, an "arbiter" column shows its modes' shares of
    the time and its mean hand-overs (see `arbiter_cell`), and the stack check follows the
    gate.
    """
    arbitrated = any(
        stats.get("mode_time_fraction")
        for modes in report.summary.values()
        for stats in modes.values()
    )
    header = (
        "| world | mode | episodes | success (95 % CI) | collisions at fault / other | "
        "timeout | time-to-goal (s) | bound (s) | path (m) | smoothness | interventions |"
    )
    rule = "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    if arbitrated:
        header += " arbiter: time share; hand-overs |"
        rule += " --- |"
    lines = [header, rule]
    for world, modes in report.summary.items():
        for mode, stats in modes.items():
            interval = stats.get("success_ci95")
            ci = f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else ""
            lines.append(
                f"| {world} | {mode} | {stats.get('episodes', 0)} | "
                f"{_fmt(stats.get('success_rate'))}{ci} | "
                f"{stats.get('collisions_at_fault', 0)} / "
                f"{stats.get('collisions_not_at_fault', 0)} | "
                f"{_fmt(stats.get('timeout_rate'))} | {_fmt(stats.get('mean_time_to_goal'), 1)} | "
                f"{_fmt(stats.get('mean_min_time'), 1)} | "
                f"{_fmt(stats.get('mean_path_length'), 1)} | {_fmt(stats.get('smoothness'), 3)} | "
                f"{_fmt(stats.get('intervention_rate'), 3)} |"
            )
            if arbitrated:
                lines[-1] += f" {arbiter_cell(stats)} |"
    ratio_text = ", ".join(
        f"{mode}: {_fmt(value)}" for mode, value in report.time_ratio_vs_dwa.items()
    )
    verdict = "PASSED" if report.gate["passed"] else "FAILED: " + "; ".join(report.gate["failures"])
    lines += ["", f"Baseline: {report.baseline}. Time-to-goal / baseline's on episodes both "]
    lines[-1] += f"reached: {ratio_text or '-'}"
    lines += [
        "Bound: the task's shortest path (free-space grid) at the top speed, over the "
        "successful episodes; no controller can be faster."
    ]
    lines += [f"Gate ({report.gate['mode']}): {verdict}"]
    if arbitrated:
        lines += [
            "Arbiter: mean share of the episode's time each mode drove (P POLICY, F FALLBACK, "
            "S STOPPED, I IDLE, T TELEOP); hand-overs: mean switches into or out of POLICY "
            "per episode after its first decision."
        ]
    check = report.stack_check
    if check is not None:
        worse = [
            f"{world}: {w['success']:.2f} < {w['best_rival']} {w['best_rival_success']:.2f}"
            for world, w in check["worlds"].items()
            if not w["ok"]
        ]
        lines += [
            f"Stack check ({check['mode']} >= the better of policy_safety and dwa, per world): "
            + ("PASSED" if check["passed"] else "FAILED: " + "; ".join(worse))
        ]
    return "\n".join(lines)


def write_outputs(report: EvaluationReport, out_dir: str | Path) -> dict[str, Path]:
    """Write evaluation.json, evaluation.md and the PNG plots into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "evaluation.json", "table": out / "evaluation.md"}
    paths["json"].write_text(json.dumps(report.to_dict(with_trajectories=True), indent=1) + "\n")
    paths["table"].write_text(markdown_table(report) + "\n")
    paths.update(plot_report(report, out))
    return paths


def plot_report(report: EvaluationReport, out: Path) -> dict[str, Path]:
    """Trajectories per world and success/time bars as PNG files (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle
    from matplotlib.transforms import Affine2D

    from rl_training.worlds import static_geometry

    colours = {
        "policy": "tab:blue",
        "policy_safety": "tab:green",
        "dwa": "tab:orange",
        "dwa_safety": "tab:red",
        "stack": "tab:purple",
    }
    paths: dict[str, Path] = {}
    procedural = (*FAMILIES, *STATIC_FAMILIES)  # each episode its own world: not drawn
    shipped = [w for w in report.worlds if not w.startswith("generated") and w not in procedural]
    if shipped:
        fig, axes = plt.subplots(1, len(shipped), figsize=(5 * len(shipped), 4.5), squeeze=False)
        for ax, world_name in zip(axes[0], shipped, strict=True):
            world = load_world(world_name)
            boxes, cylinders = static_geometry(world)
            for cx, cy, sx, sy, yaw in boxes:
                patch = Rectangle((cx - sx / 2, cy - sy / 2), sx, sy, color="0.4")
                patch.set_transform(Affine2D().rotate_around(cx, cy, yaw) + ax.transData)
                ax.add_patch(patch)
            for cx, cy, r in cylinders:
                ax.add_patch(Circle((cx, cy), r, color="0.4"))
            for mover in world.moving_cylinders:
                loop = np.asarray([*mover.waypoints, mover.waypoints[0]])
                ax.plot(loop[:, 0], loop[:, 1], ":", color="tab:red", linewidth=1)
            for episode in report.episodes:
                if episode.world != world_name or not episode.trajectory:
                    continue
                xy = np.asarray(episode.trajectory)
                ax.plot(xy[:, 0], xy[:, 1], color=colours.get(episode.mode, "k"), alpha=0.6, lw=1)
                marker = {"success": "o", "collision": "x", "timeout": "s"}[episode.outcome]
                ax.plot(xy[-1, 0], xy[-1, 1], marker, color=colours.get(episode.mode, "k"), ms=4)
            ax.set_title(world_name)
            ax.set_aspect("equal")
            half = (world.arena_size[0] / 2 + 0.2, world.arena_size[1] / 2 + 0.2)
            ax.set_xlim(-half[0], half[0])
            ax.set_ylim(-half[1], half[1])
        handles = [plt.Line2D([], [], color=c, label=m) for m, c in colours.items()]
        fig.legend(handles=handles, loc="upper right")
        fig.tight_layout()
        paths["trajectories"] = out / "trajectories.png"
        fig.savefig(paths["trajectories"], dpi=90)
        plt.close(fig)

    fig, (ax_success, ax_time) = plt.subplots(1, 2, figsize=(11, 4))
    worlds = report.worlds
    width = 0.8 / max(len(report.modes), 1)
    for k, mode in enumerate(report.modes):
        x = np.arange(len(worlds)) + k * width
        success = [report.summary[w][mode].get("success_rate", 0.0) for w in worlds]
        times = [report.summary[w][mode].get("mean_time_to_goal") or 0.0 for w in worlds]
        ax_success.bar(x, success, width, label=mode, color=colours.get(mode))
        ax_time.bar(x, times, width, label=mode, color=colours.get(mode))
    for ax, title in ((ax_success, "success rate"), (ax_time, "mean time-to-goal (s)")):
        ax.set_xticks(np.arange(len(worlds)) + 0.4 - width / 2, worlds)
        ax.set_title(title)
    ax_success.axhline(DEFAULT_SUCCESS_THRESHOLD, color="k", linestyle="--", linewidth=0.8)
    ax_success.legend(fontsize=8)
    fig.tight_layout()
    paths["bars"] = out / "success_time.png"
    fig.savefig(paths["bars"], dpi=90)
    plt.close(fig)
    return paths


def evaluation_record(report: EvaluationReport) -> dict[str, Any]:
    """The card's `evaluation` section of a report: summary and the gate verdict."""
    return {
        "worlds": report.worlds,
        "episodes_per_world": report.episodes_per_world,
        "seed": report.seed,
        "summary": report.summary,
        "time_ratio_vs_dwa": report.time_ratio_vs_dwa,
        "baseline": report.baseline,
        "gate": report.gate,
    }


def record_in_card(model_path: str | Path, report: EvaluationReport) -> bool:
    """Store the evaluation summary and gate verdict in the policy file's card.

    `evaluation.gate` is the verdict summary only; the card's top-level gate record comes
    from `rl_training promote` alone. A gate record already there is removed (it was
    recorded for the card before this edit); returns whether there was one.
    """
    policy = load_policy(model_path)
    card = policy.card.with_updates(evaluation=evaluation_record(report), gate=None)
    save_policy(policy.module, model_path, card)
    return policy.card.gate is not None
