"""The committed reference in results/ tells the truth about itself: every run's config.json
reproduces the arithmetic the run used (``run --config`` of it computes as the run did)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark import rundir
from benchmark.cli import build_parser
from benchmark.commands.common import base_config
from benchmark.config import TrainConfig
from benchmark.hardware import decide

RESULTS = Path(__file__).resolve().parents[1] / "results"
RUNS = sorted((RESULTS / "runs").glob("*"))


def test_run_config_of_every_committed_config_computes_as_the_run_did() -> None:
    assert len(RUNS) > 100
    wrong = []
    parser = build_parser()  # one parser for every run: building it is most of each check
    for run_dir in RUNS:
        found = rundir.read_metrics(run_dir)
        args = parser.parse_args(["run", "--config", str(run_dir / rundir.CONFIG)])
        cfg = base_config(args)
        _, ex = decide(cfg)  # nothing may be left to the machine: the same on any CPU
        recorded = (rundir.run_precision(found), bool(found.get("channels_last", False)))
        saved = TrainConfig.from_dict(json.loads((run_dir / rundir.CONFIG).read_text()))
        if (
            cfg.precision not in ("fp32", "bf16")
            or not isinstance(cfg.channels_last, bool)
            or (ex.precision, ex.channels_last) != recorded
            or saved.config_hash() != found["config_hash"]
        ):
            wrong.append(run_dir.name)
    assert not wrong, f"{len(wrong)} config.json do not reproduce their run: {wrong[:5]}"


def test_run_tuned_over_seeds_names_its_study_once(capsys: pytest.CaptureFixture[str]) -> None:
    """``run --tuned --seeds 0,1,2`` takes one study's parameters for all three runs: it says so
    once, not once per seed (``--print-config`` writes nothing into the committed results)."""
    from benchmark.cli import main

    study = "gap_cnn__concat__e9__p227165"
    argv = ["run", "--tuned", "--tuned-study", study, "--seeds", "0,1,2", "--print-config"]
    assert main([*argv, "--results-dir", str(RESULTS)]) == 0
    shown = capsys.readouterr()
    said = " ".join(shown.err.split())
    assert said.count(f"tuned parameters of study {study}") == 1 and "defaults trial" not in said
    assert [c["seed"] for c in json.loads(shown.out)] == [0, 1, 2]
    kept = "tiny_resnet__embed_add__e9__p227165"  # its best trial was its defaults trial
    argv = ["run", "--arch", "tiny_resnet", "--fusion", "embed_add", "--epochs", "9", "--tuned"]
    assert main([*argv, "--print-config", "--results-dir", str(RESULTS)]) == 0
    shown = capsys.readouterr()
    said = " ".join(shown.err.split())
    assert f"study {kept} (trial 0, val joint acc 99.16%): its defaults trial, so this" in said
    assert 'is the default configuration (the report marks the group "= default")' in said
    assert json.loads(shown.out)["tuned_from"]["defaults"] is True
