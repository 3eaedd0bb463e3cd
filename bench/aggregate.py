"""Merge one day's benchmark results into `<dir>/<date>.json` and `<dir>/<date>.md`.

Reads every `<dir>/*-<date>.json` that `benchlib.write_results` wrote (one per benchmark
script), and writes them together: the JSON keeps each benchmark's payload under its
name, the Markdown is one table (benchmark, figure, median, p99, unit, n) under the
machine the numbers come from (cores, CPU model). Files of another format (e.g. the
reliability campaign's report) are listed, not tabulated. `make bench` runs this last.

    python bench/aggregate.py --out bench/results [--date 2026-01-31]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlguard_tools.benchlib import WORKSPACE_ROOT, machine_info


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def load_results(out_dir: Path, date: str) -> dict[str, dict[str, Any]]:
    """Every `<out_dir>/*-<date>.json`, keyed by benchmark name (the file's prefix)."""
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(out_dir.glob(f"*-{date}.json")):
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        name = str(payload.get("benchmark") or path.name[: -len(f"-{date}.json")])
        payload["_file"] = path.name
        results[name] = payload
    return results


def markdown(date: str, machine: Mapping[str, object], results: Mapping[str, Any]) -> str:
    """One Markdown table of every benchmark's figures, with the machine above it."""
    lines = [
        f"# Benchmarks {date}",
        "",
        f"Machine: {machine.get('cores')} cores, {machine.get('cpu_model')} "
        f"(Python {machine.get('python')}, {machine.get('platform')}).",
        "",
    ]
    others = []
    for name, payload in results.items():
        other = payload.get("machine") or {}
        if other and (other.get("cores"), other.get("cpu_model")) != (
            machine.get("cores"),
            machine.get("cpu_model"),
        ):
            lines.append(
                f"Note: `{name}` ran on {other.get('cores')} cores, {other.get('cpu_model')}."
            )
    lines += [
        "| benchmark | figure | median | p99 | unit | n |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, payload in results.items():
        figures = payload.get("figures")
        if not isinstance(figures, Mapping):
            others.append(f"- `{name}`: not in the figures format, see `{payload['_file']}`")
            continue
        for figure, values in figures.items():
            if not isinstance(values, Mapping):
                continue
            median = values.get("median", values.get("value"))
            lines.append(
                f"| {_cell(name)} | {_cell(str(figure))} | {_fmt(median)} | "
                f"{_fmt(values.get('p99'))} | {_cell(_fmt(values.get('unit')))} | "
                f"{_fmt(values.get('count'))} |"
            )
    if others:
        lines += ["", "Other result files:", *others]
    return "\n".join(lines) + "\n"


def aggregate(out_dir: Path, date: str) -> tuple[Path, Path]:
    """Write `<out_dir>/<date>.json` and `<out_dir>/<date>.md`; return both paths."""
    results = load_results(out_dir, date)
    machine = machine_info()
    payload = {"date": date, "machine": machine, "benchmarks": results}
    json_path = out_dir / f"{date}.json"
    md_path = out_dir / f"{date}.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md_path.write_text(markdown(date, machine, results))
    return json_path, md_path


def main() -> None:
    """Aggregate the results of one day (today by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(WORKSPACE_ROOT / "bench" / "results"))
    parser.add_argument("--date", default=dt.date.today().isoformat(), help="YYYY-MM-DD")
    args = parser.parse_args()
    json_path, md_path = aggregate(Path(args.out), args.date)
    count = len(json.loads(json_path.read_text())["benchmarks"])
    print(f"aggregated {count} benchmark file(s): {json_path}, {md_path}")


if __name__ == "__main__":
    main()
