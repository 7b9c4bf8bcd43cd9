"""Bring older run directories up to the current metrics.json: ``python -m benchmark.migrate
RESULTS_DIR`` adds ``macs_per_image`` (multiply-accumulates of one image's forward pass, counted
as ``bench`` and a new run count them) to each complete run that lacks it, so the report, which
builds no model, can show it. Each file is rewritten atomically and at most once: a second call
changes nothing. Runs of a model this checkout cannot build are left as they are (the report
shows their MACs blank)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchmark import files
from benchmark.places import RUNS
from benchmark.rundir import METRICS, complete_runs
from benchmark.wording import plural


def with_macs(found: dict[str, Any], macs: int) -> dict[str, Any]:
    """``found`` with ``macs_per_image`` after ``params``, where a new run's metrics have it."""
    out: dict[str, Any] = {}
    for key, value in found.items():
        out[key] = value
        if key == "params":
            out["macs_per_image"] = macs
    out.setdefault("macs_per_image", macs)
    return out


def count_macs(found: dict[str, Any]) -> int:
    """MACs per image of the model a run's metrics describe, counted as a new run counts them
    (``bench.model_cost``, on the meta device)."""
    from benchmark.bench import model_cost

    config = found.get("config") or {}
    return model_cost(found["arch"], found["fusion"], config.get("model_args", {}))[1]


def migrate(results_dir: Path) -> tuple[list[str], list[str]]:
    """Add what is missing to every complete run under ``results_dir/runs``: (one line per run
    changed, one per run left out and why)."""
    changed, left = [], []
    # a run without metrics has nothing to complete: the report lists it as incomplete anyway
    for run_dir, found in complete_runs(results_dir):
        if "macs_per_image" in found:
            continue
        try:
            macs = count_macs(found)
        except Exception as exc:  # noqa: BLE001 - an old run of a renamed model: the rest go on
            left.append(f"{run_dir.name}: left as it is ({type(exc).__name__}: {exc})")
            continue
        files.write_json(run_dir / METRICS, with_macs(found, macs))
        changed.append(f"{run_dir.name}: {METRICS} + macs_per_image {macs}")
    return changed, left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.migrate", description=__doc__)
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    args = parser.parse_args(argv)
    if not (args.results_dir / RUNS).is_dir():
        parser.error(f"{args.results_dir}: no runs/ directory there; expected a results directory")
    changed, left = migrate(args.results_dir)
    for line in [*changed, *left]:
        print(line)
    kept = "it is" if len(left) == 1 else "they are"
    print(f"{plural(len(changed), 'run')} changed, {len(left)} left as {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
