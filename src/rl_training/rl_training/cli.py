"""Command line: ``rl_training train|export|evaluate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


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


def _export(args: argparse.Namespace) -> int:
    from rl_training.export import export_policy, load_trained, run_config, run_files

    config = run_config(args.run)
    model, stats = run_files(args.run, args.checkpoint)
    trained = load_trained(model, stats, config)
    extra = {"run": Path(args.run).name, "model_file": model.name}
    run_json = Path(args.run) / "run.json"
    if run_json.is_file():
        import json

        extra["run_summary"] = json.loads(run_json.read_text())
    card = export_policy(trained, args.out, name=args.name, version=args.version, training=extra)
    print(
        f"exported {args.out} ({card.observation.size} inputs, sha256 {card.weights_sha256[:12]})"
    )
    if args.parity:
        from rl_policy_node.policy_loader import load_policy
        from rl_training.export import record_observations

        observations = record_observations(trained, args.parity)
        exported = load_policy(args.out)(observations)
        reference = trained.predict(observations)
        difference = float(abs(exported - reference).max())
        print(f"parity on {args.parity} observations: max |difference| {difference:.2e}")
        if difference > 1e-4:
            return 1
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rl_training.evaluate import (
        MODES,
        evaluate,
        markdown_table,
        record_in_card,
        write_outputs,
    )

    modes = args.modes.split(",") if args.modes else list(MODES)
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        print(f"unknown mode(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    worlds = args.worlds.split(",")
    report = evaluate(
        args.model,
        worlds=worlds,
        episodes=args.episodes,
        modes=modes,
        seed=args.seed,
        progress=None if args.quiet else print,
        max_time=args.max_time,
    )
    table = markdown_table(report)
    print(table)
    out = (
        Path(args.out)
        if args.out
        else Path(args.model).with_suffix("").parent / (Path(args.model).stem + "_evaluation")
    )
    paths = write_outputs(report, out)
    print("written: " + ", ".join(str(p) for p in paths.values()))
    if args.record_card:
        record_in_card(args.model, report)
        print(f"evaluation recorded in the card of {args.model}")
    if args.gate and not report.gate["passed"]:
        print("deployment gate FAILED: " + "; ".join(report.gate["failures"]), file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `rl_training` command."""
    from rl_training.evaluate import DEFAULT_WORLDS, EVALUATION_SEED

    parser = argparse.ArgumentParser(prog="rl_training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a policy from a run config")
    train.add_argument("--config", required=True, help="config/training/<run>.yaml")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--timesteps", type=int, help="override total_timesteps")
    train.add_argument("--no-progress-bar", action="store_true")
    train.set_defaults(handler=_train)

    export = commands.add_parser("export", help="export a run as a TorchScript policy file")
    export.add_argument("--run", required=True, help="the run directory (training_runs/<name>)")
    export.add_argument("--checkpoint", help="a checkpoint zip instead of the final model")
    export.add_argument("--out", required=True, help="policy file to write (.pt)")
    export.add_argument("--name", default="nav_policy")
    export.add_argument("--version", default="1.0.0")
    export.add_argument(
        "--parity", type=int, default=1000, help="observations for the parity check (0: skip)"
    )
    export.set_defaults(handler=_export)

    evaluate = commands.add_parser("evaluate", help="evaluate a policy file (and gate it)")
    evaluate.add_argument("model", help="policy file (.pt)")
    evaluate.add_argument("--worlds", default=",".join(DEFAULT_WORLDS))
    evaluate.add_argument("--episodes", type=int, default=10, help="held-out episodes per world")
    evaluate.add_argument("--modes", help="comma list of policy,policy_safety,dwa (default all)")
    evaluate.add_argument("--seed", type=int, default=EVALUATION_SEED)
    evaluate.add_argument("--max-time", type=float, help="cap each episode's time limit (s)")
    evaluate.add_argument("--out", help="output directory (default: <model>_evaluation/)")
    evaluate.add_argument("--gate", action="store_true", help="exit 1 when the gate fails")
    evaluate.add_argument("--record-card", action="store_true", help="store results in the card")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(handler=_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rl_training` console script."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
