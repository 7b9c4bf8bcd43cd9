"""The committed reference in results/ tells the truth about itself: every run's config.json
reproduces the arithmetic the run used (``run --config`` of it computes as the run did)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import leave_undrawn

from benchmark import rundir
from benchmark.cli import build_parser, main
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


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (  # it trained gap_cnn x concat "tuned" with late_sum's parameters
            ["--arch", "gap_cnn", "--fusion", "concat", "--tuned-study",
             "gap_cnn__late_sum__e9__p227165"],
            "--tuned-study gap_cnn__late_sum__e9__p227165 tuned gap_cnn x late_sum, not gap_cnn "
            "x concat: an export applies to its own combination only",
        ),
        (  # in a grid it blamed the export: "unknown hyperparameter 'depth' for small_cnn"
            ["--arch", "gap_cnn,small_cnn", "--fusion", "concat", "--tuned-study",
             "gap_cnn__concat__e9__p227165"],
            "tuned gap_cnn x concat, not small_cnn x concat",
        ),
        (  # it looked for ../../x.json outside tuned/
            ["--tuned-study", "../../x"],
            "--tuned-study must be a plain name (no path separators), got '../../x'",
        ),
    ],
)  # fmt: skip
def test_a_named_study_must_be_of_the_pair_it_tunes(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmark.cli import main

    full = ["run", "--tuned", "--epochs", "9", *argv, "--results-dir", str(RESULTS)]
    assert main([*full, "--print-config"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert said in err


def test_a_hand_edited_export_is_a_damaged_file_not_a_bad_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export whose values cannot hold (``lr: -1``, a string batch size) is a damaged file,
    exit 1 as reliability.md says, naming it; it was exit 2, as if a flag were wrong."""
    import shutil

    from benchmark.cli import main

    study = "gap_cnn__concat__e9__p227165"
    shutil.copytree(RESULTS / "tuned", tmp_path / "tuned")
    path = tmp_path / "tuned" / f"{study}.json"
    export = json.loads(path.read_text())
    argv = ["run", "--arch", "gap_cnn", "--fusion", "concat", "--tuned", "--epochs", "9"]
    for key, value, message in [("lr", -1, "lr must be > 0"), ("batch_size", "x", "batch_size")]:
        path.write_text(json.dumps({**export, "train": {**export["train"], key: value}}))
        assert main([*argv, "--print-config", "--results-dir", str(tmp_path)]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert f"tuned/{study}.json: {message}" in err


def test_an_export_of_another_pair_under_this_pairs_name_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gap_cnn x concat's export copied to late_sum's name said "--tuned-study None tuned
    gap_cnn x concat", a flag no one typed; the file is named, exit 1."""
    import shutil

    from benchmark.cli import main

    (tmp_path / "tuned").mkdir()
    late_sum = tmp_path / "tuned" / "gap_cnn__late_sum__e9__p227165.json"
    shutil.copy(RESULTS / "tuned" / "gap_cnn__concat__e9__p227165.json", late_sum)
    argv = ["run", "--arch", "gap_cnn", "--fusion", "late_sum", "--tuned", "--epochs", "9"]
    assert main([*argv, "--print-config", "--results-dir", str(tmp_path)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"{late_sum}: an export of gap_cnn x concat under gap_cnn x late_sum's name" in err


@pytest.mark.slow  # a report of the committed 412 run directories: seconds on 2 cores
def test_the_committed_report_is_what_report_writes_from_the_committed_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report.md and summary.csv are generated, never edited: the report of a copy of results/
    says what the committed one says, so a change to the report's code that changes its words
    cannot land without the report made again. The figures are not compared: their stamp holds
    matplotlib's version, which a fresh install may not share (``compare``'s no-op redraws
    them)."""
    shutil.copytree(RESULTS, tmp_path / "results")
    monkeypatch.chdir(tmp_path)  # as committed: --results-dir results, paths said relative
    leave_undrawn(monkeypatch)
    assert main(["report", "--results-dir", "results"]) == 0
    for name in ("report.md", "summary.csv"):
        assert (tmp_path / "results" / name).read_text() == (RESULTS / name).read_text(), name
