"""Bad flags and config files: every bad value ends in one line naming what was wrong and what is
accepted, exit 2, before the data loads and with nothing written.

The tables below are built per class of input (each flag's edge values, each model argument's
type and range), so that a new flag or hyperparameter is covered by adding it, not by
remembering to write a test. Damaged files are ``test_damaged_files.py``'s.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from conftest import exit_status, one_line, read_only

from benchmark.config import TrainConfig

HUGE = str(2**70)
INT_FLAGS = {  # flag: the values refused, besides wrong types and HUGE
    "--epochs": ["0", "-1"],
    "--batch-size": ["0", "-3", "55001"],
    "--eval-batch-size": ["0", "-1"],
    "--holdout-pairs": ["-1", "51"],
    "--threads": ["0", "-2", "257"],
    "--train-subset": ["0", "-5", "127", "55001"],
    "--seed": ["-1"],
}
FLOAT_FLAGS = {  # flag: the finite values refused, besides nan, inf, -inf and wrong types
    "--lr": ["0", "-0.1", "1e-400", "1e39", "3.403e38"],  # over float32: the optimizer's traceback
    "--momentum": ["-0.1", "1", "1.5"],
    "--weight-decay": ["-1e-4", "1e39"],
    "--warmup": ["-0.1", "1"],
    "--label-smoothing": ["-0.1", "1"],
    "--sum-loss-weight": ["-1"],
    "--aug-shift": ["-0.05", "1", "3"],
    "--aug-degrees": ["-10", "180.5", "400"],
}
CHOICE_FLAGS = ("--optimizer", "--schedule", "--device", "--precision", "--log")
BOOL_FLAGS = ("--augment", "--compile", "--channels-last", "--keep-checkpoint")


def flag_rows() -> list[tuple[list[str], str]]:
    """(argv, a fragment of the one line expected) for each flag's edge values."""
    rows: list[tuple[list[str], str]] = []
    for flag, values in INT_FLAGS.items():  # named by the flag typed, not the config's field
        rows += [([f"{flag}={v}"], f"{flag} must be") for v in values]
        said = "invalid int value: '{}'; expected an integer"  # argparse's words alone said no more
        rows += [([f"{flag}={HUGE}"], flag), ([flag, "1.5"], said.format("1.5"))]
        rows += [([flag, "abc"], said.format("abc")), ([flag, "0x10"], said.format("0x10"))]
    for flag, values in FLOAT_FLAGS.items():
        rows += [([f"{flag}={v}"], f"{flag} must be") for v in values]
        rows += [([f"{flag}={v}"], f"{flag} must be a finite number") for v in ("nan", "inf")]
        rows += [([f"{flag}=-inf"], f"{flag} must be a finite number"), ([flag, "1e400"], flag)]
        rows += [([flag, "abc"], "invalid float value: 'abc'; expected a number")]
        rows += [([flag, ""], "is empty")]
    for flag in CHOICE_FLAGS:
        empty = "'' is not accepted" if flag == "--log" else "is empty"  # --log takes no list
        rows += [([flag, "bogus"], "expected one of"), ([flag, ""], empty)]
    rows += [([f"{flag}=yes"], "ignored explicit argument") for flag in BOOL_FLAGS]
    # one tracker per run: a list is no sweep (it would train the same run once per tracker)
    rows += [(["--log", "tensorboard,mlflow"], "'tensorboard,mlflow' is not accepted; expected")]
    return rows


NAME_ROWS = [
    (["--arch", ""], "no encoder given; valid: "),
    (["--arch", ","], "no encoder given"),
    (["--arch", " , "], "no encoder given"),
    (["--fusion", ""], "no fusion given; valid:"),
    (["--fusion", " , "], "no fusion given"),
    (["--arch", "nope"], "unknown encoder 'nope'; valid: "),
    (["--arch", "tiny-resnet"], "unknown encoder 'tiny-resnet' (did you mean tiny_resnet?); "),
    (["--fusion", "late-sum"], "unknown fusion 'late-sum' (did you mean late_sum?); valid:"),
    (["--arch", "GAP_CNN"], "unknown encoder 'GAP_CNN' (did you mean gap_cnn?); valid:"),
    (["--lr", "1e-3,abc"], "--lr: invalid item 'abc' in '1e-3,abc'; expected a number"),
    (["--fusion", "nope"], "unknown fusion 'nope'; valid:"),
    (["--arch", "gap_*x"], "matches nothing"),
    (["--arch", "timm:"], "unknown encoder 'timm:'"),
    (["--arch", "timm:no_such_model_xyz"], "unknown timm model 'no_such_model_xyz'; valid: any"),
    (["--arch", "timm:resnt18"], "'resnt18' (did you mean timm:resnet18 or"),
    (["--arch", "timm:vit_tiny_patch16_224"], "(224). (timm:vit_tiny_patch16_224 takes its"),
    (["--arch", "timm:test_vit", "--model-arg", "img_size=28"], "divisible by patch size (16)"),
    (["--model-arg", "nope=1"], "unknown hyperparameter 'nope'"),
    (["--model-arg", "widht=8"], "'widht' (did you mean width?) for gap_cnn x concat; valid:"),
    (
        ["--arch", "gap_cnn,small_cnn", "--model-arg", "widht=8"],
        "'widht' (did you mean width?) for any",
    ),
    (["--model-arg", "width"], "expected KEY=VALUE"),
    (["--model-arg", "=3"], "expected KEY=VALUE"),
    (["--fusion", "late_sum", "--model-arg", "hidden=3"], "unknown hyperparameter 'hidden'"),
    (["--seed", "1", "--seeds", "1,2"], "not both"),
    (["--seeds", f"0,{2**64}"], "argument --seeds: each seed must be in 0..2**63-1"),
    (["--seeds", "x"], "comma-separated integers"),
    # an empty item is refused, not dropped: 1,,2 is likelier a lost value than a stray comma
    (["--arch", "gap_cnn,,small_cnn"], "encoder list 'gap_cnn,,small_cnn' has an empty item"),
    (["--fusion", "concat,"], "fusion list 'concat,' has an empty item; valid:"),
    (["--seeds", "0,,1"], "'0,,1' has an empty item; expected comma-separated integers"),
    (["--seeds", ","], "',' is empty; expected comma-separated integers"),
    (["--epochs", "1,,2"], "'1,,2' has an empty item; expected a value or a comma list"),
    (["--lr", "0.1,"], "'0.1,' has an empty item"),
    (["--optimizer", "adamw,,sgd"], "'adamw,,sgd' has an empty item"),
    (["--fusion", "nope2"], "late_sum"),  # the valid ones are listed
    (["--model-arg", "nope=2"], "valid: depth, dropout"),
    (["--lr", "-1"], "--lr must be > 0, got -1.0"),
    (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["--optimizer", "adam"], "'adam' is not accepted; expected one of adamw, sgd"),
    (["--train-subset", "10"], "--train-subset must be >= --batch-size (128), got 10"),
    (["--train-subset", "60000"], "--train-subset must be <= the 55,000 training images"),
    (["--holdout-pairs", "51"], "--holdout-pairs must be in 0..50, got 51"),
    (["--tuned-study", "x"], "--tuned-study chooses the export --tuned uses"),
    (["--tuned-any-budget"], "--tuned-any-budget chooses the export --tuned uses"),
    (["--resume", "nowhere"], "nowhere: no such directory; expected a run directory"),
    (["--resume", "."], ".: no config.json there; expected a run directory"),  # tmp_path
    (["--resume", "nowhere", "--epochs", "9"], "drop --epochs"),
    (["--resume", "nowhere", "--tuned-study", "s"], "drop --tuned-study"),
    (["--resume", "nowhere", "--tuned-any-budget"], "drop --tuned-any-budget"),
    # a resume trains its saved config: --tuned, a config file or a grid flag was dropped unsaid,
    # and --print-config trained the run instead of printing it
    (["--resume", "nowhere", "--tuned"], "drop --tuned"),
    (["--resume", "nowhere", "--config", "c.toml"], "drop --config"),
    (["--resume", "nowhere", "--print-config"], "drop --print-config"),
    (["--resume", "nowhere", "--arch", "small_cnn"], "drop --arch"),
    (["--resume", "nowhere", "--seeds", "1,2"], "drop --seeds"),
    (["--resume", "nowhere", "--model-arg", "width=8"], "drop --model-arg"),
]


def model_arg_rows() -> list[tuple[list[str], str]]:
    """Every hyperparameter of every registered encoder and fusion (and a timm one), each with
    the values its annotated type and declared range refuse."""
    from architectures import ENCODERS, FUSIONS
    from architectures.registry import annotated_types

    rows: list[tuple[list[str], str]] = []
    pairs = [(ENCODERS, arch, "concat") for arch in ENCODERS.names()]
    pairs += [(ENCODERS, arch, "concat") for arch in ("timm:resnet10t", "timm:test_vit")]
    pairs += [(FUSIONS, "gap_cnn", fusion) for fusion in FUSIONS.names()]
    for registry, arch, fusion in pairs:
        entry = registry.get(arch if registry is ENCODERS else fusion)
        for key in entry.defaults:
            span = entry.ranges[key]
            bad = ["abc", "true", "''", "nan", "inf", "-inf", str(span.low - 1), "1e400"]
            if annotated_types(entry.factory)[key] is int:  # int, or int | None (timm's sizes)
                bad += ["1.5", str(span.high + 1), HUGE]
            else:
                bad += [str(span.high + 0.5)] + (["1"] if span.open_high else [])
            names = ["--arch", arch, "--fusion", fusion]
            rows += [([*names, "--model-arg", f"{key}={v}"], f"{key}=") for v in bad]
    return rows


CASES = [*flag_rows(), *NAME_ROWS, *model_arg_rows()]


@pytest.mark.parametrize("flags, expected", CASES, ids=[" ".join(f) for f, _ in CASES])
def test_bad_values_end_in_one_line_before_anything_is_written(
    flags: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def no_data(*args, **kwargs):
        raise AssertionError("bad input must be rejected before the data is loaded")

    monkeypatch.setattr("benchmark.data.load_mnist", no_data)
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    assert exit_status(["run", *flags, "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert expected in one_line(err)
    assert not results.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written anywhere here


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["tune", "--epochs", "1,2"], "invalid int value: '1,2'; expected an integer (one value "
         "here; a comma list sweeps in run, and compare --epochs takes a ladder)"),
        (["bench", "--iters", "2,3"], "'2,3'; expected an integer (one value here; a comma list "
         "sweeps in run)"),
        (["run", "--epochs", "1,x"], "invalid item 'x' in '1,x'; expected an integer"),  # a sweep
        (["compare", "--seed", "1.5"], "invalid int value: '1.5'; expected an integer"),
    ],
)  # fmt: skip
def test_a_number_flag_says_what_it_takes_and_where_comma_lists_go(
    argv: list[str], said: str, tmp_path: Path, capsys
) -> None:
    """argparse said "invalid int value: '1,2'" alone: not what is taken, nor that ``tune``
    takes one budget where ``compare`` takes a ladder."""
    assert exit_status([*argv, "--results-dir", str(tmp_path / "r")]) == 2
    assert one_line(capsys.readouterr().err).endswith(said)
    assert not (tmp_path / "r").exists()


def test_the_table_covers_every_config_flag() -> None:
    """A new TrainConfig field gets its edge values in the table above, or a reason here."""
    import dataclasses

    covered = {*INT_FLAGS, *FLOAT_FLAGS, *CHOICE_FLAGS, *BOOL_FLAGS}
    elsewhere = {
        "--arch": "NAME_ROWS",
        "--fusion": "NAME_ROWS",
        "--model-args": "model_arg_rows",
        "--tuned-from": "no flag: set by --tuned",
        "--auto-probe": "no flag: set by a run whose precision or layout a cpu probe chose",
        "--plugins": "no flag: set by a run whose encoder or fusion came from a plug-in",
        "--data-dir": "a path: the damaged-data cases below",
    }
    flags = {"--" + f.name.replace("_", "-") for f in dataclasses.fields(TrainConfig)}
    assert flags == covered | set(elsewhere)


def test_declared_ranges_hold_the_defaults_and_the_search_spaces() -> None:
    """Each numeric hyperparameter declares its range next to its factory, and that range holds
    its default and every value its search space may suggest."""
    from architectures import ENCODERS, FUSIONS

    class Bounds:  # a trial that records the extremes each suggestion may take
        def __init__(self) -> None:
            self.seen: dict[str, list[float]] = {}

        def suggest_float(self, name: str, low: float, high: float, **kw) -> float:
            self.seen[name] = [low, high]
            return low

        def suggest_int(self, name: str, low: int, high: int, **kw) -> int:
            self.seen[name] = [low, high]
            return low

        def suggest_categorical(self, name: str, choices: list) -> object:
            self.seen[name] = [c for c in choices if not isinstance(c, bool)]
            return choices[0]

    entries = [ENCODERS.get(n) for n in [*ENCODERS.names(), "timm:resnet10t", "timm:test_vit"]]
    entries += [FUSIONS.get(n) for n in FUSIONS.names()]
    for entry in entries:
        assert set(entry.ranges) == set(entry.defaults), entry.name
        trial = Bounds()
        entry.search_space(trial)
        for key, span in entry.ranges.items():
            default = [] if entry.defaults[key] is None else [entry.defaults[key]]  # timm's own
            for value in [*default, *trial.seen.get(key, [])]:
                assert value in span, (entry.name, key, value, str(span))


# every command that writes into --results-dir checks it before anything loads or is measured
WRITERS = ["run", "tune", "compare", "report", "bench", "datapath"]


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["run", "--val-subset", "600"], "--val-subset is a flag of tune ("),
        (["run", "--val-subset=600"], "--val-subset is a flag of tune ("),  # named without =600
        (["report", "--epochs", "3"], "--epochs is a flag of run, tune, compare and bench ("),
        # a tuning trial has no run directory to mirror or keep a checkpoint in: tune took both
        # and did nothing (--epochs 0: refused at once if the flag were taken, not tuned)
        (["tune", "--log", "mlflow", "--epochs", "0"], "--log is a flag of run and compare ("),
        (
            ["tune", "--keep-checkpoint", "--epochs", "0"],
            "--keep-checkpoint is a flag of run and compare (",
        ),
        (["run", "--result-dir", "x"], "did you mean --results-dir? ("),
        (["run", "extra"], "unrecognized arguments: extra (python -m benchmark run --help"),
    ],
)
def test_an_unknown_flag_is_named_with_the_command_and_a_hint(
    argv: list[str], hint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """argparse named no command ("python -m benchmark: error: unrecognized arguments") and
    gave no hint; a flag of another command, or a near miss, is named."""
    monkeypatch.chdir(tmp_path)
    assert exit_status(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"python -m benchmark {argv[0]}: error: unrecognized arguments: ")
    assert hint in line and line.endswith("--help lists its flags)")
    assert list(tmp_path.iterdir()) == []


def test_resume_elsewhere_than_the_runs_results_dir_is_refused(tmp_path: Path, capsys) -> None:
    """``--resume`` continues a run in its own directory: a ``--results-dir`` naming another was
    taken and ignored; the run's own (or none) is accepted."""
    run_dir = tmp_path / "mine" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    elsewhere = tmp_path / "other"
    assert exit_status(["run", "--resume", str(run_dir), "--results-dir", str(elsewhere)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"in {tmp_path / 'mine'}; drop --results-dir {elsewhere}" in line
    assert not elsewhere.exists()
    exit_status(["run", "--resume", str(run_dir), "--results-dir", str(tmp_path / "mine")])
    assert "--results-dir" not in capsys.readouterr().err  # on to the (empty) config it read


@pytest.mark.parametrize("command", WRITERS)
def test_results_dir_that_is_a_file(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    monkeypatch.setattr("benchmark.bench.model_cost", lambda *a, **k: pytest.fail("measured"))
    target = tmp_path / "results"
    target.write_text("not a directory")
    assert exit_status([command, "--results-dir", str(target / "sub")]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"--results-dir {target / 'sub'}: {target} is a file; expected a directory" in line
    assert target.read_text() == "not a directory" and list(tmp_path.iterdir()) == [target]


EMPTY_PATHS = [
    ("run", "--results-dir"), ("run", "--resume"), ("run", "--config"), ("tune", "--storage"),
    ("tune", "--results-dir"), ("compare", "--storage"), ("compare", "--results-dir"),
    ("report", "--out"), ("report", "--runs"), ("report", "--bench"), ("report", "--against"),
    ("bench", "--results-dir"), ("datapath", "--results-dir"), ("predict", "--run"),
    ("predict", "--image"), ("export", "--run"), ("export", "--out"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "flag"), EMPTY_PATHS)
def test_an_empty_path_is_refused_not_read_as_here_or_as_not_given(
    command: str, flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``--results-dir ''`` wrote runs/ into the current folder, ``--resume ''`` started a new
    run, ``--storage ''`` took the default: an empty path is one line, nothing written."""
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    monkeypatch.chdir(tmp_path)
    needed = {"predict": ["--run", "r", "--image", "i.png", "--addend", "1"]}
    needed["export"] = ["--run", "r", "--format", "onnx"]
    assert exit_status([command, *needed.get(command, []), flag, ""]) == 2
    assert f"argument {flag}: is empty; expected a path" in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "results" / "runs" / "20261203-012558-gap_cnn-embed_add-s0-ce6cd2"


@pytest.mark.parametrize(
    ("command", "flag"), [p for p in EMPTY_PATHS if p != ("report", "--against")]
)  # (a report --against no runs is said before any path is opened)
def test_a_path_too_long_for_the_file_system_is_a_usage_error(
    command: str, flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A name of 300 characters (more than a file name may have) was the system's error,
    exit 1, as a full disk is; it is what was typed: one line naming it, exit 2."""
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    monkeypatch.chdir(tmp_path)
    image = str(REPO / "examples" / "seven.png")
    needed = {"predict": ["--run", str(REFERENCE), "--image", image, "--addend", "1"]}
    needed["export"] = ["--run", str(REFERENCE), "--format", "onnx"]
    long = str(tmp_path / ("n" * 300))
    assert exit_status([command, *needed.get(command, []), flag, long]) == 2
    line = one_line(capsys.readouterr().err)
    assert "n" * 300 in line, line
    assert list(tmp_path.iterdir()) == []


def test_a_stale_mnist_root_naming_a_file_is_passed_over_where_data_holds_mnist(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As MNIST is looked for: $MNIST_ROOT, then ./data; only where no root holds it is a
    file as $MNIST_ROOT the thing to fix."""
    from benchmark.commands.common import UsageError, check_data_dir

    monkeypatch.chdir(tmp_path)
    stale = tmp_path / "mnist.tar.gz"
    stale.write_text("x")
    monkeypatch.setenv("MNIST_ROOT", str(stale))
    with pytest.raises(UsageError, match=f"MNIST_ROOT={stale}: {stale} is a file"):
        check_data_dir(None)
    shutil.copytree(synthetic_root, tmp_path / "data")
    check_data_dir(None)


@pytest.mark.parametrize("via", ["--data-dir", "MNIST_ROOT"])
@pytest.mark.parametrize("under", [False, True])
@pytest.mark.parametrize("command", ["run", "tune", "compare", "datapath"])
def test_data_dir_that_is_a_file(
    command: str, under: bool, via: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A file as the MNIST root was looked in, then downloaded into: "MNIST not found ... the
    download failed (NotADirectoryError)", exit 1. It is the flag (or $MNIST_ROOT) that is
    wrong: one line, 2."""
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    target = tmp_path / "mnist.tar.gz"
    target.write_text("not a directory")
    given = target / "sub" if under else target
    results = tmp_path / "results"
    argv = [command, "--results-dir", str(results)]
    if via == "MNIST_ROOT":
        monkeypatch.setenv("MNIST_ROOT", str(given))
    else:
        argv += ["--data-dir", str(given)]
    assert exit_status(argv) == 2
    line = one_line(capsys.readouterr().err)
    said = f"MNIST_ROOT={given}" if via == "MNIST_ROOT" else f"--data-dir {given}"
    assert f"{said}: {target} is a file; expected the MNIST root" in line
    assert target.read_text() == "not a directory" and list(tmp_path.iterdir()) == [target]


def test_a_printed_config_is_refused_a_data_dir_that_is_a_file(tmp_path: Path, capsys) -> None:
    """``run --data-dir README.md --print-config`` printed a config no run could use, exit 0."""
    target = tmp_path / "README.md"
    target.write_text("not a directory")
    for given in (str(target), f"{tmp_path},{target}"):  # a sweep's second root too
        assert exit_status(["run", "--data-dir", given, "--print-config"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and f"--data-dir {target}: {target} is a file" in one_line(err)


@pytest.mark.parametrize("command", ["tune", "compare"])
def test_a_model_that_cannot_take_mnist_stops_tuning_before_anything_is_written(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """As ``run`` does: one line, before the data loads or a storage is created (it was the
    first trial's traceback, an optuna.db left behind)."""
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    results = tmp_path / "results"
    argv = [command, "--arch", "gap_cnn,timm:vit_tiny_patch16_224", "--results-dir", str(results)]
    assert exit_status(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert "timm:vit_tiny_patch16_224 x concat with its defaults cannot run on 1x28x28" in line
    assert not results.exists()


@pytest.mark.parametrize("command", ["tune", "compare"])
def test_missing_mnist_leaves_no_optuna_db(
    command: str, synthetic_root: Path, tmp_path: Path, capsys
) -> None:
    """The data is found before the storage is opened: a root with three of MNIST's four files
    (a root to complete: exit 2) used to leave a new optuna.db with an empty study behind."""
    root = tmp_path / "mnist"
    shutil.copytree(synthetic_root, root)
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    results = tmp_path / "results"
    argv = [command, "--data-dir", str(root), "--results-dir", str(results), "--epochs", "1"]
    assert exit_status(argv) == 2
    assert "t10k-labels-idx1-ubyte: missing (3 of the 4" in one_line(capsys.readouterr().err)
    assert not results.exists()


@pytest.mark.parametrize("command", WRITERS)
def test_results_dir_read_only(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    with read_only(tmp_path):  # as root (CI) a read-only mount: root writes past a chmod
        assert exit_status([command, "--results-dir", str(tmp_path / "r")]) == 2
    assert "is not writable" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "command, folder",
    [("run", "runs"), ("tune", "tuned"), ("compare", "runs"), ("compare", "tuned")]
    + [("report", "plots"), ("report", "studies"), ("bench", "bench"), ("datapath", "datapath")],
)
def test_a_read_only_folder_a_command_writes_is_refused_first(
    command: str, folder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Found before anything is loaded, probed or written: report replaced report.md and then
    failed on a read-only plots/, run found a read-only runs/ after the CPU probe."""
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    monkeypatch.setattr("benchmark.hardware.probe_cpu", lambda *a, **k: pytest.fail("probed"))
    results = tmp_path / "r"
    (results / folder).mkdir(parents=True)
    with read_only(results / folder):
        assert exit_status([command, "--results-dir", str(results)]) == 2
    said = one_line(capsys.readouterr().err)
    assert said.endswith(f"--results-dir {results}: {results / folder} is not writable")
    assert sorted(p.name for p in results.iterdir()) == [folder]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
@pytest.mark.parametrize("devices", ["cuda", "cpu,cuda"])  # a sweep: every device is checked
def test_cuda_without_cuda(
    devices: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    assert exit_status(["run", "--device", devices, "--results-dir", str(tmp_path / "r")]) == 2
    assert "CUDA is not available" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_every_registered_model_passes_the_dry_run() -> None:
    """The meta-device check must not refuse what trains: every encoder x fusion, defaults
    (``check_model`` refuses with a ``ValueError``; every refusal is listed)."""
    from architectures import ENCODERS, FUSIONS, check_model

    refused = []
    for arch in [*ENCODERS.names(), "timm:resnet10t"]:
        for fusion in FUSIONS.names():
            try:
                check_model(arch, fusion, {})
            except ValueError as exc:
                refused.append(str(exc))
    assert refused == []


# ------------------------------------------------------------------------ config files


def test_a_run_config_reprints_as_itself_and_flags_override_it(tmp_path: Path, capsys) -> None:
    import json

    from benchmark import hardware, runs
    from benchmark.cli import main

    cfg = TrainConfig(fusion="late_sum", epochs=2, batch_size=64, lr=8e-3, threads=1)
    # config.json as a run writes it: the resolved configuration, before any training
    run_dir = runs.start_run(hardware.decide(cfg)[0], tmp_path)
    saved = json.loads((run_dir / "config.json").read_text())
    argv = ["run", "--config", str(run_dir / "config.json"), "--print-config"]
    assert main([*argv, "--results-dir", str(tmp_path / "r")]) == 0
    assert json.loads(capsys.readouterr().out) == saved
    assert main([*argv, "--lr", "0.0123", "--results-dir", str(tmp_path / "r")]) == 0
    assert json.loads(capsys.readouterr().out) == {**saved, "lr": 0.0123}
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("command", "folder"),
    [
        ("run", "runs"),
        ("tune", "tuned"),
        ("compare", "runs"),
        ("bench", "bench"),
        ("datapath", "datapath"),
        ("report", "plots"),
    ],
)
def test_a_file_where_a_command_writes_its_folder_is_a_usage_error(
    command: str, folder: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """``<results-dir>/runs`` a file used to be "File exists" (exit 1), and for ``bench`` only
    after it had measured: now the one line, before anything is read or measured."""
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    results = tmp_path / "r"
    results.mkdir()
    (results / folder).write_text("")
    assert exit_status([command, "--results-dir", str(results)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(
        f"--results-dir {results}: {results / folder} is a file; expected a directory"
    )
    assert sorted(p.name for p in results.iterdir()) == [folder]
    (results / folder).unlink()
    (results / folder).symlink_to(tmp_path / "gone")  # after the work: "File exists"
    assert exit_status([command, "--results-dir", str(results)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(f"{results / folder} is a broken link; expected a directory")


@pytest.mark.parametrize(
    "content, name, expected",
    [
        ("{", "c.json", "not valid JSON"),
        (
            "a: 1",
            "c.yaml",
            "not valid JSON (Expecting value: line 1 column 1 (char 0)); --config "
            "takes .json or .toml",
        ),  # fmt: skip
        ("[1, 2]", "c.json", "expected an object of config fields"),
        ('{"lrr": 1}', "c.json", "unknown config key lrr (did you mean lr?)"),
        ('{"batch_size": 0}', "c.json", "c.json: batch_size must be a positive integer"),
        ('{"epochs": -3}', "c.json", "c.json: epochs must be a positive integer, got -3"),
        ("lr = -1", "c.toml", "c.toml: lr must be > 0, got -1"),  # it read as a flag's error
        ('{"batch_size": "x"}', "c.json", "c.json: batch_size must be of type int, got 'x'"),
        ('{"model_args": 3}', "c.json", "c.json: model_args must be of type dict, got 3"),
        ('{"arch": null}', "c.json", "c.json: arch must be of type str, got None"),
        ('{"fusion": ["concat"]}', "c.json", "c.json: fusion must be of type str, got ['concat']"),
        ('{"epochs": true}', "c.json", "c.json: epochs must be of type int, got True"),  # not 1
        ('{"data_dir": " "}', "c.json", "c.json: data_dir is empty; give the MNIST root"),
        ("lr = [", "c.toml", "not valid TOML"),
        # trained, then every report of the results directory stopped with a traceback
        ('{"tuned_from": {"trial": [1]}}', "c.json", "c.json: tuned_from must be what --tuned"),
        ('{"tuned_from": {"study": "s", "trial": 1, "value": "x"}}', "c.json", "its value is 'x'"),
        (None, "missing.json", "cannot read it"),
    ],
)
def test_bad_config_files(
    content: str | None, name: str, expected: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    argv = ["run", "--config", str(path), "--results-dir", str(tmp_path / "r")]
    assert exit_status(argv) == 2
    assert expected in one_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_a_flag_typed_beside_a_config_file_may_make_its_values_fit(tmp_path: Path, capsys) -> None:
    """Typed flags override the file: a file value that fits only with them (train_subset 100
    with --batch-size 64), or that one of them replaces (lr -1 with --lr), is no error; the
    file's own impossible values are named with the file."""
    (tmp_path / "c.toml").write_text("train_subset = 100\nlr = -1\n")
    argv = ["run", "--config", str(tmp_path / "c.toml"), "--print-config"]
    assert exit_status([*argv, "--batch-size", "64", "--lr", "1e-3"]) == 0
    assert json.loads(capsys.readouterr().out)["train_subset"] == 100
    assert exit_status([*argv, "--batch-size", "64"]) == 2
    assert one_line(capsys.readouterr().err).endswith("c.toml: lr must be > 0, got -1")


def test_toml_config(tmp_path: Path, capsys) -> None:
    import json

    (tmp_path / "c.toml").write_text('arch = "small_cnn"\nlr = 0.002\n[model_args]\nwidth = 8\n')
    argv = ["run", "--config", str(tmp_path / "c.toml"), "--print-config", "--epochs", "2"]
    assert exit_status(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["arch"], printed["lr"], printed["epochs"]) == ("small_cnn", 0.002, 2)
    assert printed["model_args"] == {"width": 8}


def test_any_config_flag_sweeps_a_comma_list(capsys) -> None:
    """--lr a,b --batch-size c,d --seeds 0,1: the cartesian product, every value checked."""
    import json

    argv = ["run", "--lr", "1e-3,3e-3", "--batch-size", "64,128", "--seeds", "0,1"]
    assert exit_status([*argv, "--optimizer", "sgd", "--print-config"]) == 0
    configs = json.loads(capsys.readouterr().out)
    assert sorted((c["lr"], c["batch_size"], c["seed"]) for c in configs) == [
        (lr, b, s) for lr in (1e-3, 3e-3) for b in (64, 128) for s in (0, 1)
    ]
    assert {c["optimizer"] for c in configs} == {"sgd"}
    assert exit_status([*argv[:3], "--lr", "1e-3,inf", "--print-config"]) == 2
    assert "lr must be a finite number" in one_line(capsys.readouterr().err)
    assert exit_status(["run", "--schedule", "cosine,linear", "--print-config"]) == 2
    assert "expected one of onecycle, cosine, constant" in one_line(capsys.readouterr().err)
    # a value listed twice is one run, as a seed listed twice is (it trained the same run twice)
    assert exit_status(["run", "--epochs", "1,1", "--lr", "1e-3,0.001,2e-3", "--print-config"]) == 0
    configs = json.loads(capsys.readouterr().out)
    assert [(c["epochs"], c["lr"]) for c in configs] == [(1, 1e-3), (1, 2e-3)]


def test_a_grid_dry_runs_each_model_once_however_many_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seeds and sweeps of one model share its dry run (a timm ViT's takes up to a second)."""
    import architectures

    checked: list[tuple] = []
    real = architectures.check_model
    monkeypatch.setattr(architectures, "check_model", lambda *a: checked.append(a[:2]) or real(*a))
    argv = ["run", "--arch", "timm:test_vit", "--model-arg", "img_size=28"]
    argv += ["--model-arg", "patch_size=7", "--seeds", "0,1,2", "--lr", "0.001,0.002"]
    assert exit_status([*argv, "--print-config"]) == 0
    assert checked == [("timm:test_vit", "concat")]


def test_a_grid_gives_each_model_argument_to_the_combinations_that_take_it(capsys) -> None:
    """A timm ViT's sizes beside gap_cnn: the ViT is built with them, gap_cnn without (and the
    run says so); a name no combination takes is still a typo, listing every valid name."""
    argv = ["run", "--arch", "gap_cnn,timm:test_vit", "--fusion", "late_sum", "--seeds", "0,1"]
    argv += ["--model-arg", "img_size=28", "--model-arg", "patch_size=7", "--print-config"]
    assert exit_status(argv) == 0
    shown = capsys.readouterr()  # the JSON alone on stdout, the notes on stderr
    configs = json.loads(shown.out)
    held = {"img_size": 28, "patch_size": 7}
    assert [(c["arch"], c["seed"], c["model_args"]) for c in configs] == [
        ("gap_cnn", 0, {}),
        ("gap_cnn", 1, {}),
        ("timm:test_vit", 0, held),
        ("timm:test_vit", 1, held),
    ]
    note = " ".join(shown.err.split())
    assert note == (
        "model args img_size=28 patch_size=7: not taken by gap_cnn x late_sum, built without them"
    )
    typo = ["run", "--arch", "gap_cnn,timm:test_vit", "--fusion", "late_sum"]
    assert exit_status([*typo, "--model-arg", "widht=8", "--print-config"]) == 2
    line = one_line(capsys.readouterr().err)
    assert (
        "unknown hyperparameter 'widht' (did you mean width?) for any of the 2 combinations; "
        "valid: " in line
    )
    assert "depth, drop_path_rate, drop_rate, dropout, head_dropout, img_size, patch_size" in line


def test_a_model_argument_value_given_twice_is_no_sweep() -> None:
    """``width=8,8`` is ``width=8``: it was a sweep of one value, as ``--epochs 1,1`` was two."""
    from benchmark.cli import build_parser
    from benchmark.commands.models import pop_model_arg_sweeps

    args = build_parser().parse_args(
        ["run", "--model-arg", "width=8,8", "--model-arg", "depth=1,2,1"]
    )
    assert pop_model_arg_sweeps(args) == {"depth": [1, 2]}
    assert args.model_arg == [("width", 8), ("depth", 1)]


def test_a_model_argument_sweeps_a_comma_list_where_it_is_taken(capsys) -> None:
    """--model-arg width=8,16: one run per width for each combination that takes it, once for
    one that does not (said, with the values as typed); every value is checked."""
    argv = ["run", "--arch", "gap_cnn,timm:test_vit", "--fusion", "late_sum", "--model-arg"]
    argv += ["width=8,16,8", "--model-arg", "img_size=28", "--model-arg", "patch_size=7"]
    assert exit_status([*argv, "--print-config"]) == 0
    shown = capsys.readouterr()
    configs = json.loads(shown.out)
    held = {"img_size": 28, "patch_size": 7}
    assert [(c["arch"], c["model_args"]) for c in configs] == [
        ("gap_cnn", {"width": 8}),
        ("gap_cnn", {}),  # its default width: the default configuration
        ("timm:test_vit", held),
    ]
    assert "model args width=8,16: not taken by timm:test_vit x late_sum" in " ".join(
        shown.err.split()
    )
    one = ["run", "--arch", "gap_cnn", "--print-config", "--model-arg"]
    for typed, says in [
        ("width=8,x", "width='x' for gap_cnn: expected int in 1..256"),
        ("width=8,,16", "--model-arg width=8,,16: an empty value; expected a comma list such as"),
    ]:
        assert exit_status([*one, typed]) == 2
        assert says in one_line(capsys.readouterr().err)


def test_a_model_argument_at_its_default_is_the_default_configuration(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--model-arg width=16 on gap_cnn (its default) is left out of the config, and said, so its
    runs share the default configuration's hash and report group; a sweep through the default
    trains it as the default. Under --tuned the typed value pins it against the tuned one."""
    from dataclasses import replace

    from benchmark import exports

    argv = ["run", "--arch", "gap_cnn,small_cnn", "--fusion", "concat", "--print-config"]
    assert exit_status([*argv, "--model-arg", "width=8,16", "--model-arg", "depth=2"]) == 0
    shown = capsys.readouterr()
    configs = json.loads(shown.out)
    assert [(c["arch"], c["model_args"]) for c in configs] == [
        ("gap_cnn", {"width": 8}),
        ("gap_cnn", {}),
        ("small_cnn", {"width": 8}),
        ("small_cnn", {}),
    ]
    assert " ".join(shown.err.split()).endswith(
        "model args at the model's default, left out (its default model): depth=2 (gap_cnn x "
        "concat); width=16 (gap_cnn x concat, small_cnn x concat)"
    )
    tuned = {"study": "s", "trial": 0, "value": 0.5}
    monkeypatch.setattr(exports, "apply_tuned", lambda cfg, *a: replace(cfg, tuned_from=tuned))
    assert exit_status([*argv[:2], "gap_cnn", *argv[3:], "--tuned", "--model-arg", "width=16"]) == 0
    assert json.loads(capsys.readouterr().out)["model_args"] == {"width": 16}


@pytest.mark.parametrize("command", ["tune", "compare", "datapath"])
def test_a_command_that_sweeps_no_model_argument_says_so(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, "--model-arg", "width=8,16", "--results-dir", str(tmp_path / "r")]
    assert exit_status(argv) == 2
    assert one_line(capsys.readouterr().err).endswith(
        f"argument --model-arg: 'width=8,16': {command} takes one value per model argument "
        "(run sweeps a comma list)"
    )
    assert not (tmp_path / "r").exists()


def test_every_model_of_a_grid_that_cannot_run_is_named_at_once(capsys) -> None:
    """A family with several members that cannot take 28x28 images is refused once, naming
    them all (the first with its reason), not one member per try; nothing is written."""
    argv = ["run", "--arch", "timm:test_vit,gap_cnn,timm:test_vit_relpos", "--fusion", "concat"]
    assert exit_status([*argv, "--print-config"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "error: 2 of 3 models cannot run on 1x28x28 images (leave them out of --arch): " in line
    assert "timm:test_vit x concat with its defaults cannot run on 1x28x28 images: " in line
    sizes = "--model-arg img_size=28 --model-arg patch_size=7"
    assert (
        f"(timm:test_vit takes its image size as img_size; it runs on 28x28 with {sizes})" in line
    )
    # the models named after the first have no line of their own: their sizes are given too
    assert line.endswith(
        f"; also timm:test_vit_relpos x concat; timm:test_vit_relpos runs on 28x28 with {sizes}"
    )
    assert exit_status(["compare", *argv[1:3], "--fusion", "late_sum", "--results-dir", "x"]) == 2
    assert "error: 2 of 3 models cannot run on 1x28x28" in one_line(capsys.readouterr().err)
    assert not Path("x").exists()


@pytest.mark.parametrize("command", ["run", "tune"])
def test_help_shows_which_choice_flags_take_a_comma_list(command: str, capsys) -> None:
    """run sweeps ``--optimizer adamw,sgd``, yet its help showed ``{adamw,sgd}``, one value, as
    tune's does, where a list is refused; numeric flags already showed ``INT[,INT...]``."""
    assert exit_status([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    listed = command == "run"
    assert ("--optimizer {adamw,sgd}[,...]" in text) is listed
    assert ("--schedule {onecycle,cosine,constant}[,...]" in text) is listed


@pytest.mark.parametrize("command", ["run", "bench", "datapath"])
def test_help_says_a_model_arg_sweeps_only_where_it_does(command: str, capsys) -> None:
    """datapath measures one model, and refuses ``width=8,16``; its help spoke of grids."""
    assert exit_status([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    sweeps = command != "datapath"
    assert ("a comma list, width=8,16, sweeps it" in text) is sweeps
    assert ("in a grid" in text) is sweeps


@pytest.mark.parametrize("command", ["run", "tune", "compare", "bench", "datapath"])
def test_help_never_shows_none_as_a_default(command: str, capsys) -> None:
    """--channels-last, --threads, --data-dir and --train-subset showed "[None]": each such
    field's help says what unset means instead."""
    from benchmark.commands.common import config_fields

    assert exit_status([command, "--help"]) == 0
    assert "[None]" not in capsys.readouterr().out
    unset = [f for f in config_fields() if f.default is None]  # the fields with a flag
    assert unset and all("unset: " in f.metadata["help"] for f in unset)


def test_every_help_fits_an_80_column_terminal(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """predict's help kept its description's own line breaks (lines of 82-93 columns, its first
    repeating the command's name): each is wrapped to the terminal, as argparse wraps the rest."""
    from benchmark.cli import COMMAND_PARSERS, build_parser

    monkeypatch.setenv("COLUMNS", "80")
    commands = COMMAND_PARSERS[build_parser().prog]
    wide = []
    for command in ["", *commands]:
        assert exit_status([command, "--help"] if command else ["--help"]) == 0
        lines = capsys.readouterr().out.splitlines()
        wide += [f"{command}: {line}" for line in lines if len(line) > 80]
    assert wide == []
    assert exit_status(["predict", "--help"]) == 0
    out = capsys.readouterr().out  # a command's usage names it (not the top one's usage line)
    assert out.startswith(f"usage: {build_parser().prog} predict [-h]")
    assert "\nDigit and sum for your own PNG/JPEG images" in out


@pytest.mark.parametrize(
    "command, shown",
    [
        ("run", "--data-dir DIR[,DIR...]"),
        ("run", "--results-dir DIR"),
        ("tune", "--data-dir DIR"),
        ("datapath", "--steps N"),
    ],
)
def test_help_names_a_value_by_what_it_is(command: str, shown: str, capsys) -> None:
    """--data-dir showed STR (a folder), datapath's counts STEPS, WARMUP_STEPS and NUM_WORKERS
    where every other command's counts read N, and run's --results-dir RESULTS_DIR where every
    other command's reads DIR."""
    assert exit_status([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert shown in out and "STR" not in out and "NUM_WORKERS" not in out
    assert "RESULTS_DIR" not in out


@pytest.mark.parametrize(
    "message, said",
    [
        (
            "train_subset must be >= batch_size (128), got 10",
            "--train-subset must be >= --batch-size (128), got 10",
        ),
        ("seed must be in 0..2**63-1, got -1", "--seed must be in 0..2**63-1, got -1"),
        ("model_args must be of type dict", "model_args must be of type dict"),  # --model-arg K=V
        ("data_dir /home/me/data_dir/lr is empty", "--data-dir /home/me/data_dir/lr is empty"),
        ("lr must be > 0 (see my.data_dir)", "--lr must be > 0 (see my.data_dir)"),  # a name
    ],
)
def test_a_config_message_is_said_in_the_words_of_the_command_line(message: str, said: str) -> None:
    """Flags typed get their own names back, never a config field's; a path or file name that
    holds a field's name is left as it is."""
    assert TrainConfig.in_flag_words(message) == said


def test_every_bound_itself_is_accepted() -> None:
    """The refusals above stop just past each bound, not at it."""
    from benchmark.config import FLOAT32_MAX, MAX_THREADS, MNIST_TRAIN_IMAGES
    from benchmark.holdout import MAX_HOLDOUT_PAIRS

    edges = {"threads": MAX_THREADS, "aug_degrees": 180.0, "holdout_pairs": MAX_HOLDOUT_PAIRS}
    edges |= {"batch_size": MNIST_TRAIN_IMAGES, "train_subset": MNIST_TRAIN_IMAGES}
    edges |= dict.fromkeys(("aug_shift", "label_smoothing", "warmup", "momentum"), 0.0)
    edges |= dict.fromkeys(("weight_decay", "sum_loss_weight"), 0.0)
    TrainConfig(**edges).validate()
    TrainConfig(lr=FLOAT32_MAX, weight_decay=FLOAT32_MAX).validate()  # float32's largest
    lows = {"threads": 1, "batch_size": 1, "train_subset": 1, "epochs": 1, "eval_batch_size": 1}
    TrainConfig(**(edges | lows)).validate()


def test_a_config_with_every_field_set_comes_back_from_its_json_whole() -> None:
    """config.json is the run's whole record: a field to_dict left out would be lost on resume
    and in the report, with no error. A field added to TrainConfig must be set here too."""
    every = TrainConfig(
        arch="small_cnn",
        fusion="late_sum",
        model_args={"width": 8},
        seed=3,
        epochs=2,
        batch_size=64,
        optimizer="sgd",
        lr=0.01,
        momentum=0.8,
        weight_decay=0.01,
        schedule="cosine",
        warmup=0.1,
        label_smoothing=0.1,
        sum_loss_weight=0.5,
        augment=True,
        aug_shift=0.05,
        aug_degrees=5.0,
        train_subset=1000,
        holdout_pairs=2,
        eval_batch_size=500,
        device="cpu",
        precision="bf16",
        channels_last=True,
        compile=True,
        threads=2,
        data_dir="mnist",
        log="tensorboard",
        keep_checkpoint=True,
        tuned_from={"study": "s", "trial": 4, "value": 0.99},
        auto_probe={"precision": "bf16"},
        plugins=[{"module": "mine", "sha256": "0" * 64, "entries": ["mine"]}],
    )
    default = TrainConfig()
    unset = [
        f.name for f in fields(TrainConfig) if getattr(every, f.name) == getattr(default, f.name)
    ]
    assert unset == []
    assert TrainConfig.from_dict(json.loads(json.dumps(every.to_dict()))) == every


def test_the_augmentation_ranges_are_searched_only_with_augmentation() -> None:
    import optuna

    from benchmark.config import search_space

    for augment in (False, True):
        trial = optuna.trial.FixedTrial(
            {"lr": 4e-3, "weight_decay": 5e-4, "batch_size": 128, "label_smoothing": 0.0}
            | {"sum_loss_weight": 1.0, "augment": augment, "aug_shift": 0.1, "aug_degrees": 10.0}
        )
        space = search_space(trial)
        assert space["augment"] is augment
        assert ({"aug_shift", "aug_degrees"} <= set(space)) is augment


def test_a_path_of_blanks_is_refused_as_empty(tmp_path: Path, monkeypatch, capsys) -> None:
    """``--results-dir ' '`` is no more a path than ``''``: it made a folder named by a space."""
    monkeypatch.chdir(tmp_path)
    assert exit_status(["run", "--results-dir", "  ", "--print-config"]) == 2
    assert "argument --results-dir: is empty; expected a path" in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_the_process_count_takes_four_per_core_and_no_more(monkeypatch) -> None:
    import argparse

    from benchmark.commands.values import processes

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert processes("8") == 8
    with pytest.raises(
        argparse.ArgumentTypeError, match=r"must be <= 8 \(4 per core here\), got 9"
    ):
        processes("9")


@pytest.mark.parametrize(
    ("typed", "taken"),
    [
        ("width=8", ("width", 8)),
        (" width = 8 ", ("width", 8)),  # as a shell passes "width = 8" quoted
        ("dropout=0.5", ("dropout", 0.5)),
        ("pretrained=True", ("pretrained", True)),
        ("pretrained=FALSE", ("pretrained", False)),
        ("img_size=None", ("img_size", None)),
        ("img_size=none", ("img_size", None)),
        ("act=relu", ("act", "relu")),
    ],
)
def test_a_model_argument_value_reads_as_the_type_it_spells(typed: str, taken: tuple) -> None:
    from benchmark.commands.values import key_value

    key, value = key_value(typed)
    assert (key, value) == taken and type(value) is type(taken[1])


def test_an_optional_count_takes_none_in_any_case(capsys) -> None:
    """``--train-subset None`` (as the config prints it) is the whole training set."""
    assert (
        exit_status(["run", "--train-subset", "256", "--train-subset", "None", "--print-config"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["train_subset"] is None


def test_a_data_dir_whose_name_holds_a_comma_is_one_path_not_a_sweep(
    tmp_path: Path, capsys
) -> None:
    root = tmp_path / "mn,ist"
    root.mkdir()
    assert exit_status(["run", "--data-dir", str(root), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["data_dir"] == str(root)


def test_a_typed_model_argument_wins_over_the_config_files(tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model_args": {"width": 8, "depth": 3}}))
    argv = ["run", "--config", str(config), "--model-arg", "width=32", "--print-config"]
    assert exit_status(argv) == 0
    assert json.loads(capsys.readouterr().out)["model_args"] == {"width": 32, "depth": 3}


def test_every_command_writes_under_output_unless_told(tmp_path: Path) -> None:
    """Not into results/, the committed reference figures."""
    from benchmark.cli import COMMAND_PARSERS, build_parser

    parsers = COMMAND_PARSERS[build_parser().prog]
    takes = [
        n
        for n, p in parsers.items()
        if any("--results-dir" in a.option_strings for a in p._actions)
    ]
    assert {"run", "tune", "compare", "bench", "datapath"} <= set(takes)
    for name in takes:
        assert parsers[name].get_default("results_dir") == "output", name


def test_what_a_run_learns_leaves_the_combinations_names_out_only_when_asked() -> None:
    """The report sets your run beside the reference's by what they learned, whatever their
    combination: ``names=False`` leaves arch and fusion out, and nothing else."""
    from benchmark.config import learned_values

    named = learned_values({"arch": "small_cnn", "lr": 0.01})
    assert named["arch"] == "small_cnn" and named["lr"] == 0.01 and "seed" not in named
    unnamed = learned_values({"arch": "small_cnn", "lr": 0.01}, names=False)
    assert unnamed == {k: v for k, v in named.items() if k not in ("arch", "fusion")}


def test_a_report_reads_a_tuned_from_missing_a_field_that_a_run_refuses() -> None:
    """A run's own record must be whole; a report reads only the types of what is there."""
    from benchmark.config import tuned_from_problem

    partial = {"study": "s", "trial": 3}
    assert tuned_from_problem(partial, whole=False) is None
    assert tuned_from_problem(partial).endswith("it lacks value")
    assert "its trial is '3'" in tuned_from_problem({"trial": "3"}, whole=False)


def test_a_config_files_whole_number_for_a_float_trains_the_run_its_flag_gives(
    tmp_path: Path, capsys
) -> None:
    """``aug_degrees = 15`` in a TOML file is the run ``--aug-degrees 15`` is: one config hash,
    so that the report pools their seeds in one group."""
    config = tmp_path / "c.toml"
    config.write_text("augment = true\naug_degrees = 15\nweight_decay = 0\n")
    assert exit_status(["run", "--config", str(config), "--print-config"]) == 0
    from_file = TrainConfig.from_dict(json.loads(capsys.readouterr().out))
    argv = ["run", "--augment", "--aug-degrees", "15", "--weight-decay", "0", "--print-config"]
    assert exit_status(argv) == 0
    from_flags = TrainConfig.from_dict(json.loads(capsys.readouterr().out))
    assert from_file.config_hash() == from_flags.config_hash()


def test_eight_models_are_named_and_any_more_counted() -> None:
    """A grid's notes name eight models and count the rest: eight is no "and 0 more"."""
    from benchmark.commands.models import named

    eight = [f"m{i} x concat" for i in range(8)]
    assert named(eight) == ", ".join(eight)
    assert named([*eight, "m8 x concat", "m9 x concat"]) == ", ".join(eight) + " and 2 more"
