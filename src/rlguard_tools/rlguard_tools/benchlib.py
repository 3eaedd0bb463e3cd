"""Shared helpers for `make bench` scripts: statistics, machine description, result files.

A benchmark script collects samples, then calls `write_results(name, figures, out_dir)`,
which prints a Markdown table and writes `<out_dir>/<name>-<date>.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from rlguard_common.profile_yaml import workspace_root

# The workspace the benchmarks run in ($RLGUARD_WORKSPACE or the source tree), else here.
WORKSPACE_ROOT = workspace_root() or Path.cwd()


def machine_info() -> dict[str, object]:
    """Cores, CPU model, Python and platform of the machine the numbers come from."""
    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def summarize(samples: Iterable[float], unit: str) -> dict[str, object]:
    """Median, p99, mean, max and count of `samples`."""
    values = np.asarray(list(samples), dtype=np.float64)
    if values.size == 0:
        return {"unit": unit, "count": 0}
    return {
        "unit": unit,
        "count": int(values.size),
        "median": float(np.median(values)),
        "p99": float(np.percentile(values, 99)),
        "mean": float(values.mean()),
        "max": float(values.max()),
    }


def markdown_table(figures: Mapping[str, Mapping[str, object]]) -> str:
    """A Markdown table of figures (one row per figure)."""

    def fmt(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| figure | median | p99 | unit | n |", "| --- | --- | --- | --- | --- |"]
    for name, fig in figures.items():
        lines.append(
            f"| {name} | {fmt(fig.get('median', fig.get('value', '')))} | "
            f"{fmt(fig.get('p99', ''))} | {fig.get('unit', '')} | {fig.get('count', '')} |"
        )
    return "\n".join(lines)


def write_results(
    name: str, figures: Mapping[str, Mapping[str, object]], out_dir: str | Path
) -> Path:
    """Print the figures as a table and write them with the machine info to a JSON file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    date = dt.date.today().isoformat()
    path = out / f"{name}-{date}.json"
    payload = {"benchmark": name, "date": date, "machine": machine_info(), "figures": figures}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"## {name}\n\n{markdown_table(figures)}\n\nwritten: {path}")
    return path


def bench_arguments(description: str) -> argparse.Namespace:
    """The common command line of a benchmark script (`--out DIR`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=str(WORKSPACE_ROOT / "bench" / "results"))
    return parser.parse_args()
