"""Command line: ``rl_training train|export|evaluate|promote|dataset``."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _train(args: argparse.Namespace) -> int:
    from rl_training.config import load_config
    from rl_training.train import train

    config = load_config(args.config)
    if args.timesteps is not None:
        from dataclasses import replace

        raw = dict(config.raw)
        raw["total_timesteps"] = args.timesteps
        config = replace(config, total_timesteps=args.timesteps, raw=raw)
    run_dir = train(config, resume=args.resume, progress_bar=not args.no_progress_bar)
    print(f"run directory: {run_dir}")
    return 0


def _export_format(args: argparse.Namespace) -> str:
    """The format asked for: --format, else the suffix of --out (.onnx: onnx)."""
    suffix_format = "onnx" if Path(args.out).suffix.lower() == ".onnx" else "torchscript"
    chosen = args.format or suffix_format
    if chosen != suffix_format:
        raise ValueError(
            f"--format {chosen} does not match --out {args.out} "
            "(ONNX files end in .onnx, TorchScript files do not)"
        )
    if args.policy and chosen != "onnx":
        raise ValueError("--policy converts a TorchScript file to ONNX: --out must end in .onnx")
    if chosen == "onnx" and args.parity <= 0:
        raise ValueError("an ONNX export always checks parity: --parity must be > 0")
    return chosen


def _export(args: argparse.Namespace) -> int:
    try:
        chosen = _export_format(args)
    except ValueError as exc:
        print(f"rl_training export: {exc}", file=sys.stderr)
        return 2
    if args.policy:
        from rl_policy_node.onnx_export import OnnxParityError
        from rl_policy_node.policy_loader import load_policy
        from rl_training.export import convert_to_onnx, record_policy_observations

        try:
            source = load_policy(args.policy)
            observations = record_policy_observations(source, args.parity, seed=args.parity_seed)
            result = convert_to_onnx(source.path, args.out, observations)
        except (OnnxParityError, ValueError) as exc:
            print(f"rl_training export: {exc}", file=sys.stderr)
            return 1
        print(
            f"exported {args.out} from {args.policy} (sha256 {result.sha256[:12]}); parity with "
            f"the TorchScript file on {result.observations} recorded observations: "
            f"max |difference| {result.max_difference:.2e}"
        )
        return 0

    from rl_training.export import export_policy, load_trained, run_config, run_files

    config = run_config(args.run)
    model, stats = run_files(args.run, args.checkpoint)
    trained = load_trained(model, stats, config)
    extra = {"run": Path(args.run).name, "model_file": model.name}
    run_json = Path(args.run) / "run.json"
    if run_json.is_file():
        import json

        from rl_training.provenance import portable_path

        summary = json.loads(run_json.read_text())
        if "config_file" in summary:  # runs written before records held portable paths
            summary["config_file"] = portable_path(summary["config_file"])
        extra["run_summary"] = summary
    if chosen == "onnx":
        from rl_policy_node.onnx_export import OnnxParityError
        from rl_training.export import export_onnx, record_observations

        observations = record_observations(trained, args.parity, seed=args.parity_seed)
        try:
            card, result = export_onnx(
                trained,
                args.out,
                observations,
                name=args.name,
                version=args.version,
                training=extra,
            )
        except (OnnxParityError, ValueError) as exc:
            print(f"rl_training export: {exc}", file=sys.stderr)
            return 1
        print(
            f"exported {args.out} ({card.observation.size} inputs, sha256 {result.sha256[:12]}); "
            f"parity with the TorchScript module on {result.observations} observations: "
            f"max |difference| {result.max_difference:.2e}"
        )
    else:
        card = export_policy(
            trained, args.out, name=args.name, version=args.version, training=extra
        )
        print(
            f"exported {args.out} ({card.observation.size} inputs, "
            f"sha256 {card.weights_sha256[:12]})"
        )
    if args.parity:
        from rl_policy_node.policy_loader import load_policy
        from rl_training.export import record_observations

        observations = record_observations(trained, args.parity, seed=args.parity_seed)
        exported = load_policy(args.out)(observations)
        reference = trained.predict(observations)
        difference = float(abs(exported - reference).max())
        print(
            f"parity with the training policy on {args.parity} observations: "
            f"max |difference| {difference:.2e}"
        )
        if difference > 1e-4:
            return 1
    return 0


def _evaluation_modes(args: argparse.Namespace) -> list[str] | None:
    """The --modes asked for (the default modes without it); None, said why, if unknown."""
    from rl_training.evaluate import DEFAULT_MODES, MODES

    modes = args.modes.split(",") if args.modes else list(DEFAULT_MODES)
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        print(f"unknown mode(s): {', '.join(unknown)}", file=sys.stderr)
        return None
    return modes


def _evaluator(args: argparse.Namespace, modes: list[str]) -> Callable[[Path], Any]:
    """The evaluation the options ask for, as a function of the policy file."""
    from rl_training.evaluate import evaluate

    return functools.partial(
        evaluate,
        worlds=args.worlds.split(","),
        episodes=args.episodes,
        modes=modes,
        seed=args.seed,
        progress=None if args.quiet else print,
        max_time=args.max_time,
        workers=args.workers,
        safety_yaml=args.safety_config,
    )


def _write_report(args: argparse.Namespace, report: Any) -> None:
    """Print the table and write the outputs into --out (default <model>_evaluation/)."""
    from rl_training.report import markdown_table, write_outputs

    print(markdown_table(report))
    model = Path(args.model)
    out = Path(args.out) if args.out else model.parent / (model.stem + "_evaluation")
    paths = write_outputs(report, out)
    print("written: " + ", ".join(str(p) for p in paths.values()))


def _evaluate(args: argparse.Namespace) -> int:
    from rl_training.report import record_in_card

    modes = _evaluation_modes(args)
    if modes is None:
        return 2
    report = _evaluator(args, modes)(Path(args.model))
    _write_report(args, report)
    if args.record_card:
        dropped = record_in_card(args.model, report)
        print(f"evaluation recorded in the card of {args.model}")
        if dropped:
            print("its gate record no longer applies and was removed: run rl_training promote")
    if args.gate and not report.gate["passed"]:
        print("deployment gate FAILED: " + "; ".join(report.gate["failures"]), file=sys.stderr)
        return 1
    return 0


def _promote(args: argparse.Namespace) -> int:
    from rl_policy_node.policy_loader import PolicyLoadError
    from rl_training.promote import (
        PROMOTION_MODE,
        PromotionError,
        promote,
        promotion_scope_problem,
    )

    modes = _evaluation_modes(args)
    if modes is None:
        return 2
    problem = promotion_scope_problem(args.worlds.split(","), args.episodes)
    if problem:
        print(f"rl_training promote: {problem}", file=sys.stderr)
        return 2
    if PROMOTION_MODE not in modes:
        print(f"rl_training promote: --modes must include {PROMOTION_MODE}", file=sys.stderr)
        return 2
    try:
        promotion = promote(args.model, _evaluator(args, modes))
    except (PromotionError, PolicyLoadError) as exc:
        print(f"rl_training promote: not promoted: {exc}", file=sys.stderr)
        return 1
    _write_report(args, promotion.report)
    gate = promotion.gate
    if not gate.passed:
        print(
            f"deployment gate (version {gate.version}) FAILED, recorded as not passed in "
            f"{args.model}: " + "; ".join(gate.failures),
            file=sys.stderr,
        )
        return 1
    print(
        f"promoted {args.model}: gate version {gate.version} passed for weights "
        f"{gate.weights_sha256[:12]}... (card {gate.card_sha256[:12]}...)"
    )
    return 0


def _add_evaluation_options(parser: argparse.ArgumentParser) -> None:
    """The options that say which evaluation runs (evaluate and promote)."""
    from rl_training.evaluate import DEFAULT_MODES, DEFAULT_WORLDS, EVALUATION_SEED, MODES

    parser.add_argument("model", help="policy file (.pt or .onnx)")
    parser.add_argument("--worlds", default=",".join(DEFAULT_WORLDS))
    parser.add_argument("--episodes", type=int, default=10, help="held-out episodes per world")
    parser.add_argument(
        "--modes",
        help=f"comma list of {','.join(MODES)} (default: {','.join(DEFAULT_MODES)})",
    )
    parser.add_argument("--seed", type=int, default=EVALUATION_SEED)
    parser.add_argument("--max-time", type=float, help="cap each episode's time limit (s)")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (same results as with 1)"
    )
    parser.add_argument(
        "--safety-config",
        help="safety node YAML the filter is built from (default config/safety_controller.yaml)",
    )
    parser.add_argument("--out", help="output directory (default: <model>_evaluation/)")
    parser.add_argument("--quiet", action="store_true")


def _dataset(args: argparse.Namespace) -> int:
    from rl_training.dataset import dataset_settings, write_datasets

    try:
        settings = dataset_settings(
            args.run_dir,
            robot=args.robot,
            world=args.world,
            goal_tolerance=args.goal_tolerance,
            training_config=args.training_config,
            period_s=args.period,
            namespace=args.namespace,
        )
        written = write_datasets(args.run_dir, settings, args.out, args.sha, args.split)
    except (OSError, ValueError) as exc:
        print(f"rl_training dataset: {exc}", file=sys.stderr)
        return 1
    for sha, (path, arrays) in written.items():
        print(
            f"wrote {path}: {arrays['reward'].size} transitions of model {sha[:12] or 'unknown'}, "
            f"{int(arrays['done'].sum())} episode ends, {int(arrays['terminal'].sum())} terminal, "
            f"{int(arrays['intervention'].sum())} interventions"
        )
    return 0


def _add_dataset_command(commands: Any) -> None:
    """The `dataset` subcommand: a run's recording into offline-RL arrays."""
    dataset = commands.add_parser(
        "dataset",
        help="turn RUN_DIR/recording.mcap's policy/transition records into an .npz of "
        "obs, action, reward, done (see rl_training.dataset)",
    )
    dataset.add_argument("run_dir", help="run directory holding recording.mcap (e.g. runs/<time>)")
    dataset.add_argument("--out", help="file to write (default: RUN_DIR/transitions.npz)")
    dataset.add_argument("--sha", help="the model to take (weights sha256 prefix, or 'unknown')")
    dataset.add_argument(
        "--split", action="store_true", help="one file per model: <out>_<sha12>.npz"
    )
    dataset.add_argument("--robot", default="default", help="robot profile (footprint radius)")
    dataset.add_argument("--world", help="world whose goal tolerance applies (default: report's)")
    dataset.add_argument("--goal-tolerance", type=float, help="goal reached within this (m)")
    dataset.add_argument("--training-config", help="training config whose reward weights apply")
    dataset.add_argument("--period", type=float, help="control period (s; default: from ticks)")
    dataset.add_argument("--namespace", default="", help="the robot namespace of the topics")
    dataset.set_defaults(handler=_dataset)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `rl_training` command."""
    parser = argparse.ArgumentParser(prog="rl_training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a policy from a run config")
    train.add_argument("--config", required=True, help="config/training/<run>.yaml")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--timesteps", type=int, help="override total_timesteps")
    train.add_argument("--no-progress-bar", action="store_true")
    train.set_defaults(handler=_train)

    export = commands.add_parser(
        "export", help="export a run (or convert a .pt file) as a TorchScript or ONNX policy file"
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="the run directory (training_runs/<name>)")
    source.add_argument(
        "--policy", help="a TorchScript policy file to convert to ONNX (card kept as it is)"
    )
    export.add_argument("--checkpoint", help="a checkpoint zip instead of the final model")
    export.add_argument("--out", required=True, help="policy file to write (.pt or .onnx)")
    export.add_argument(
        "--format",
        choices=("torchscript", "onnx"),
        help="file format (default: from the suffix of --out; .onnx is ONNX)",
    )
    export.add_argument("--name", default="nav_policy")
    export.add_argument("--version", default="1.0.0")
    export.add_argument(
        "--parity",
        type=int,
        default=1000,
        help="recorded observations for the parity checks (0: skip; ONNX always checks)",
    )
    export.add_argument(
        "--parity-seed", type=int, default=0, help="seed of the parity observations' rollouts"
    )
    export.set_defaults(handler=_export)

    evaluate = commands.add_parser("evaluate", help="evaluate a policy file (and gate it)")
    _add_evaluation_options(evaluate)
    evaluate.add_argument("--gate", action="store_true", help="exit 1 when the gate fails")
    evaluate.add_argument(
        "--record-card",
        action="store_true",
        help="store the results and the verdict in the card (removes a gate record: only "
        "promote records one)",
    )
    evaluate.set_defaults(handler=_evaluate)

    promote = commands.add_parser(
        "promote",
        help="evaluate a policy file afresh and record the gate verdict in its card "
        "(exit 1 unless it passed)",
    )
    _add_evaluation_options(promote)
    promote.set_defaults(handler=_promote)
    _add_dataset_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rl_training` console script."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
