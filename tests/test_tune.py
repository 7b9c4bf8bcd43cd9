"""tune: resumable Optuna studies (SQLite, journal, PostgreSQL), worker processes, run --tuned."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from conftest import PLAIN_CPU, exit_status, one_line, write_export
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState

from architectures import ENCODERS, FUSIONS
from benchmark import hardware, tuning
from benchmark.cli import main
from benchmark.config import TrainConfig
from benchmark.errors import DamagedFileError, UsageError
from benchmark.exports import apply_tuned
from benchmark.hardware import decide
from benchmark.storages import open_storage, storage_label
from benchmark.trials import counts_towards_budget
from benchmark.tuning import (
    budget,
    default_params,
    finished_count,
    objective,
    open_study,
    split_params,
    study_name,
)

TINY = ["--epochs", "1", "--train-subset", "300", "--val-subset", "200"]
STUDY = "gap_cnn__concat__e1__n300__v200"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
TRAIN_SEARCHED = {"lr", "weight_decay", "batch_size", "label_smoothing", "sum_loss_weight"}


def tune(results: Path, mnist_root: Path, *extra: str) -> int:
    return main(
        [
            "tune",
            "--arch",
            "gap_cnn",
            "--fusion",
            "concat",
            *TINY,
            "--data-dir",
            str(mnist_root),
            "--results-dir",
            str(results),
            *extra,
        ]
    )


def sqlite(results: Path) -> str:
    return f"sqlite:///{results / 'optuna.db'}"


def load(storage: str, name: str = STUDY) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def check_shared_study(study: optuna.Study, wanted: int, jobs: int) -> None:
    """Workers on one study: the requested finished trials, numbered without gaps, all finished
    (none lost in a RUNNING state), each suggestion drawn once (no two workers replaying the same
    sampler seed), and the registry defaults evaluated exactly once. A trial a worker started
    when every place was held by the others' is ``surplus``: it trained nothing and counts not."""
    trials = study.trials
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state in FINISHED for t in trials), [t.state for t in trials]
    # MaxTrialsCallback stops new trials; the ones already running when the count is reached end.
    counted = [t for t in trials if counts_towards_budget(t)]
    assert wanted <= len(counted) <= wanted + jobs - 1
    surplus = [t for t in trials if t not in counted]
    assert all(t.user_attrs.get("surplus") and not t.intermediate_values for t in surplus)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == len(trials)
    assert [t.number for t in trials if t.user_attrs.get("defaults")] == [0]
    assert trials[0].params == default_params("gap_cnn", "concat")


# --------------------------------------------------------------------------- search spaces


@pytest.mark.parametrize("fusion", FUSIONS.names())
@pytest.mark.parametrize("arch", [*ENCODERS.names(), "timm:resnet10t"])
def test_defaults_are_a_point_of_every_space(arch: str, fusion: str) -> None:
    """The enqueued first trial reproduces the registry and TrainConfig defaults exactly."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FixedTrial warns about a default outside its range
        model_args, train = split_params(default_params(arch, fusion), arch, fusion)
    defaults = {**ENCODERS.get(arch).defaults, **FUSIONS.get(fusion).defaults}
    assert model_args and model_args == {k: defaults[k] for k in model_args}
    reference = TrainConfig()
    assert TRAIN_SEARCHED <= set(train)
    assert train == {k: getattr(reference, k) for k in train}


def test_storage_kinds(tmp_path: Path) -> None:
    assert isinstance(open_storage(f"journal:{tmp_path / 'a' / 'j'}"), JournalStorage)
    assert isinstance(open_storage(str(tmp_path / "b.log")), JournalStorage)
    assert isinstance(open_storage(sqlite(tmp_path)), RDBStorage)
    with pytest.raises(UsageError, match="SQLAlchemy URL"):
        open_storage(str(tmp_path / "optuna.db"))
    label = storage_label("postgresql+psycopg2://bench:s3cret@db.lan/optuna")
    assert "s3cret" not in label and "db.lan/optuna" in label


def test_a_storage_whose_schema_another_process_is_creating_is_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two compares started at once on a new PostgreSQL storage: the one that loses the race to
    create Optuna's enum types gets "type studydirection already exists" (a ProgrammingError,
    which was reported as a damaged storage in one CI run); it opens the storage again."""
    from sqlalchemy.exc import ProgrammingError

    from benchmark import storages

    real, calls = storages.Storage, []

    def racing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            orig = Exception('type "studydirection" already exists')
            raise ProgrammingError("CREATE TYPE studydirection", {}, orig)
        return real(*args, **kwargs)

    monkeypatch.setattr(storages, "Storage", racing)
    monkeypatch.setattr(storages.time, "sleep", lambda _: None)
    assert isinstance(open_storage(sqlite(tmp_path)), RDBStorage) and len(calls) == 2


@pytest.mark.parametrize("kind", ["sqlite:///", "journal:"])
@pytest.mark.parametrize("command", ["tune", "compare"])
def test_a_storage_under_a_file_is_one_line_before_anything_is_written(
    command: str, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """It was "error: afile: File exists", exit 1, from creating the storage's folder."""
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    spec = f"{kind}{blocker / 'optuna.db'}"
    argv = [command, "--storage", spec, "--results-dir", str(tmp_path / "r")]
    assert main([*argv, "--arch", "gap_cnn", "--fusion", "concat", "--trials", "1"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(f"error: --storage {spec}: {blocker} is a file; expected a directory")
    assert blocker.read_text() == "x" and list(tmp_path.iterdir()) == [blocker]


@pytest.mark.parametrize(
    ("spec", "said"),
    [  # they said "Can't load plugin: sqlalchemy.dialects:foo" and "a directory; expected a file"
        ("foo://bar", "--storage 'foo://bar': no database is called 'foo'; expected"),
        ("sqlite:///", "--storage 'sqlite:///' names no file; expected an SQLAlchemy URL"),
        ("journal:", "--storage 'journal:' names no file; expected an SQLAlchemy URL"),
        # in memory: tune printed ~150 lines of heartbeat-thread tracebacks (each thread opens
        # its own empty database), compare ended in an UnboundLocalError
        ("sqlite://", "--storage 'sqlite://' is a database in memory: nothing would be kept"),
        ("sqlite:///:memory:", "'sqlite:///:memory:' is a database in memory: nothing would"),
    ],
)
def test_a_storage_of_no_kind_says_what_is_taken(
    spec: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    argv = ["tune", "--storage", spec, "--results-dir", str(tmp_path / "r"), "--trials", "1"]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert said in line and "(journal:PATH or PATH.log)" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["tune", "compare"])
def test_a_sqlite_url_with_three_slashes_meant_absolute_is_refused(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``sqlite:///tmp/x/optuna.db`` is the relative path tmp/x/optuna.db: it created tmp/x
    under the current directory and a study there. Where only the absolute path's folder
    exists, it is refused naming the four-slash URL."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "studies"
    folder.mkdir()
    spec = f"sqlite://{folder}/optuna.db"  # three slashes: relative
    argv = [command, "--storage", spec, "--results-dir", str(tmp_path / "r"), "--trials", "1"]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert f"names {str(folder)[1:]}/optuna.db, under the current directory" in line
    assert f"give sqlite:///{folder}/optuna.db" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["studies"]
    # untyped, the default storage of a relative --results-dir is never taken for one, and
    # sqlite:///./ says the path is meant here
    relative = str(folder)[1:]
    assert main(["compare", "--results-dir", relative, "--status"]) == 0
    assert main(["compare", "--storage", f"sqlite:///./{relative}/x.db", "--status"]) == 0
    assert "nothing started" in capsys.readouterr().out


def test_defaults_enqueued_once_and_again_after_failure(tmp_path: Path) -> None:
    """A resumed study keeps its waiting defaults trial; one that failed (interrupted) is redone."""
    storage = open_storage(f"journal:{tmp_path / 'j.log'}")
    cfg = TrainConfig(epochs=1)
    study = open_study(storage, "s", cfg, None)
    study = open_study(storage, "s", cfg, None)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["defaults"]
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    study = open_study(storage, "s", cfg, None)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1
    with pytest.raises(UsageError, match="another --study"):
        open_study(storage, "s", replace(cfg, epochs=3), None)


@pytest.mark.parametrize("key", ["seed", "data_dir", "epochs"])
def test_an_export_setting_what_tuning_never_sets_is_damaged(
    key: str, tmp_path: Path, capsys
) -> None:
    """A ``train`` entry tuning never writes (a seed typed into the export) overrode the typed
    ``--seeds``: three runs of seed 5 for ``--seeds 0,1,2``, two of them dropped by the report
    as repeats. Such an export is now a damaged file, named, and nothing trains."""
    name = write_export(tmp_path, 1)
    path = tmp_path / "tuned" / f"{name}.json"
    found = json.loads(path.read_text())
    found["train"][key] = {"seed": 5, "data_dir": "/elsewhere", "epochs": 4}[key]
    path.write_text(json.dumps(found))
    argv = ["run", "--tuned", "--epochs", "1", "--seeds", "0,1,2", "--print-config"]
    assert main([*argv, "--results-dir", str(tmp_path)]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"{path}: not an export of `tune`" in line
    assert f"train holds {key}, which tuning never sets" in line


@pytest.mark.parametrize(
    ("field", "value"),
    [("train", [1, 2]), ("value", "x"), ("model_args", None), ("trial", True), ("study", 5)],
)
@pytest.mark.parametrize("command", ["run", "bench"])
def test_an_export_with_a_field_of_another_type_is_one_line_naming_it(
    command: str, field: str, value: object, tmp_path: Path, capsys
) -> None:
    """A hand-edited export is a damaged file (exit 1, one line naming it and the field) for
    ``run --tuned`` and ``bench --tuned`` alike; it used to be a traceback where it was used."""
    name = write_export(tmp_path, 1)
    path = tmp_path / "tuned" / f"{name}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    argv = [command, "--tuned", "--epochs", "1", "--results-dir", str(tmp_path)]
    argv += ["--print-config"] if command == "run" else ["--arch", "gap_cnn", "--fusion", "concat"]
    assert main(argv) == 1
    line = one_line(capsys.readouterr().err)
    assert f"{path}: not an export of `tune` (TypeError(" in line and f"{field} {value!r}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tuned"]


@pytest.mark.parametrize(
    ("fixed", "said"),
    [
        ({"width": 8}, "budget fixed holds width, no setting"),
        ([1], "budget fixed [1]"),
        ({"model_args": [1]}, "budget fixed model_args [1]"),
    ],
)
def test_an_export_whose_budget_holds_fixed_what_tune_never_writes_is_one_line(
    fixed: object, said: str, tmp_path: Path, capsys
) -> None:
    """The settings a study held fixed are compared with the run's by name: a key that is no
    setting was an ``AttributeError`` traceback, a list in place of the mapping another."""
    name = write_export(tmp_path, 1)
    path = tmp_path / "tuned" / f"{name}.json"
    found = json.loads(path.read_text())
    found["budget"]["fixed"] = fixed
    path.write_text(json.dumps(found))
    argv = ["run", "--tuned", "--epochs", "1", "--print-config", "--results-dir", str(tmp_path)]
    assert main(argv) == 1
    line = one_line(capsys.readouterr().err)
    assert f"{path}: not an export of `tune` (TypeError(" in line and said in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tuned"]


@pytest.mark.parametrize("damage", ["minimise", "budget"])
def test_a_study_changed_in_its_storage_is_refused_not_exported(
    damage: str, tmp_path: Path, synthetic_root: Path, capsys
) -> None:
    """Optuna loads an existing study whatever direction is asked: one set to minimise in the
    storage was tuned on and its worst trial exported as the best; a budget that is no object
    was a traceback. Both are one line naming the study (exit 1), and nothing is exported."""
    from benchmark import exports

    db = f"sqlite:///{tmp_path / 'optuna.db'}"
    name = "gap_cnn__concat__e1__n300__v200"
    study = optuna.create_study(
        storage=db, study_name=name, direction="minimize" if damage == "minimise" else "maximize"
    )
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    if damage == "budget":
        study.set_user_attr("budget", "x")
    assert tune(tmp_path, synthetic_root, "--trials", "1") == 1
    line = one_line(capsys.readouterr().err)
    said = "set to minimise in its storage" if damage == "minimise" else "its budget in the"
    assert f"study {name!r}: {said}" in line
    assert not (tmp_path / "tuned").exists()
    with pytest.raises(DamagedFileError, match=said):
        exports.best_record(study, db, tmp_path)


def test_run_tuned_needs_a_valid_export(tmp_path: Path, capsys) -> None:
    assert main(["run", "--tuned", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "tuned") in err
    assert "python -m benchmark tune --arch gap_cnn --fusion concat" in err
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "gap_cnn__concat__e4.json").write_text("{}")
    assert main(["run", "--tuned", "--results-dir", str(tmp_path)]) == 1  # a damaged file
    assert "gap_cnn__concat__e4.json: not an export of `tune`" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_run_tuned_without_an_export_says_how_to_tune_at_its_budget(tmp_path: Path, capsys) -> None:
    """The tune command it gave dropped the run's budget: followed, it tuned at 4 epochs on
    every image (hours on a CPU), and the run asking again refused that export."""
    import shlex

    from benchmark.cli import build_parser

    budget = ["--epochs", "2", "--train-subset", "512", "--holdout-pairs", "20"]
    argv = ["run", "--tuned", *budget, "--optimizer", "sgd", "--results-dir", str(tmp_path)]
    assert main(argv) == 2
    told = one_line(capsys.readouterr().err).split("`")[1]
    args = build_parser().parse_args(shlex.split(told)[3:])  # after "python -m benchmark"
    asked = (args.epochs, args.train_subset, args.holdout_pairs, args.optimizer, args.results_dir)
    assert (args.command, *asked) == ("tune", 2, 512, 20, "sgd", str(tmp_path))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--train-subset", "100"], "--train-subset must be >= 256"),
        (["--val-subset", "5001"], "--val-subset must be <= the 5,000 validation images"),
        (["--arch", "all", "--study", "x"], "--study names one study"),
        (["--timeout", "0"], "--timeout must be > 0 seconds, got 0.0"),
        (["--timeout", "nan"], "--timeout must be > 0 seconds, got nan"),
        (["--trials", "0"], "--trials must be a positive integer"),
        (["--jobs", "0"], "--jobs must be a positive integer, got 0"),  # as compare says it
        (["--max-params", "0"], "--max-params must be a positive integer, got 0"),
        (["--jobs", "1000"], "argument --jobs: must be <= "),  # 4 per core: "(4 per core here)"
        (["--storage", "optuna.db"], "SQLAlchemy URL"),
        (["--arch", "nope"], "unknown encoder"),
        (["--study", ""], "--study must be a plain name (no path separators), got ''"),
        (["--study", "../x"], "--study must be a plain name (no path separators), got '../x'"),
        (["--study", ".."], "--study must be a plain name (no path separators), got '..'"),
        (["--study", "a\nb"], "--study must be a plain name (no control characters such as"),
        # it trained the trials, then failed writing tuned/<300 x's>.json: name too long
        (["--study", "x" * 300], "--study must be a name of at most 250 bytes (its export is"),
    ],
)
def test_bad_flags(
    tmp_path: Path, capsys, flags: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Data reached fails at once: a refusal dropped had gone on to a real tune.)"""
    monkeypatch.setattr(tuning, "load_data", lambda *a: pytest.fail("data loaded"))
    assert exit_status(["tune", "--results-dir", str(tmp_path / "r"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_study_name_with_two_combinations_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """--study names one study: two combinations (not only --arch all) are refused."""
    monkeypatch.setattr(tuning, "load_data", lambda *a: pytest.fail("data loaded"))
    argv = ["tune", "--arch", "gap_cnn,small_cnn", "--study", "x"]
    assert exit_status([*argv, "--results-dir", str(tmp_path / "r")]) == 2
    assert "--study names one study" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_a_val_subset_of_every_validation_image_is_accepted(tmp_path: Path) -> None:
    """--val-subset 5000 is the whole validation split: allowed, as 5001 is refused."""
    from benchmark.cli import build_parser
    from benchmark.commands.tune import check_flags

    argv = ["tune", "--val-subset", "5000", "--results-dir", str(tmp_path)]
    check_flags(build_parser().parse_args(argv))


def test_a_study_name_of_250_bytes_is_a_file_name_that_can_be_written(tmp_path: Path) -> None:
    from benchmark.exports import plain_name_problem

    name = "x" * 250
    assert plain_name_problem(name) is None and plain_name_problem("é" * 125) is None
    (tmp_path / f"{name}.json").write_text("{}")  # NAME_MAX: the limit is the file system's
    for longer in ("x" * 251, "é" * 126):  # bytes, not characters
        assert "at most 250 bytes" in plain_name_problem(longer)


# ------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_pruning_reports_every_epoch(mnist) -> None:
    """A trial reports each epoch and is pruned when the pruner says so, except after the last."""

    class Always(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return True

    data = replace(mnist, val=mnist.val.subset(200))
    for epochs, state in ((2, TrialState.PRUNED), (1, TrialState.COMPLETE)):
        study = optuna.create_study(direction="maximize", pruner=Always())
        study.enqueue_trial(default_params("gap_cnn", "concat") | {"width": 8, "depth": 1})
        base = TrainConfig(epochs=epochs, train_subset=256)
        base, ex = decide(base)
        study.optimize(lambda t, base=base, ex=ex: objective(t, base, data, ex), n_trials=1)
        (trial,) = study.trials
        assert trial.state == state
        assert list(trial.intermediate_values) == [1]
        assert trial.user_attrs["params"] > 0 and trial.user_attrs["images_per_s"] > 0


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, mnist_root: Path) -> Path:
    """A 3-trial study on the default SQLite storage, and its export."""
    results = tmp_path_factory.mktemp("tune")
    assert tune(results, mnist_root, "--trials", "3") == 0
    return results


@pytest.mark.slow
def test_study_resumes(tiny_study: Path, mnist_root: Path) -> None:
    first = load(sqlite(tiny_study)).trials
    assert [t.number for t in first] == [0, 1, 2]
    assert all(t.state in FINISHED for t in first)
    assert first[0].user_attrs["defaults"] and first[0].params == default_params(
        "gap_cnn", "concat"
    )
    for t in first:
        assert list(t.intermediate_values) == [1]  # one report per epoch
        assert t.user_attrs["params"] > 1000
        assert t.user_attrs["train_seconds"] > 0 and t.user_attrs["images_per_s"] > 0
        chosen = hardware.cpu_choice()  # auto on this machine, as the trial trained
        assert (t.user_attrs["precision"], t.user_attrs["channels_last"]) == (
            chosen["precision"], chosen["channels_last"],
        )  # fmt: skip
    assert list(tiny_study.rglob("*.pt")) == [] and not (tiny_study / "runs").exists()

    assert tune(tiny_study, mnist_root, "--trials", "5") == 0  # --trials is the total
    study = load(sqlite(tiny_study))
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert [(t.params, t.value) for t in trials[:3]] == [(t.params, t.value) for t in first]
    assert [t.number for t in trials if t.user_attrs.get("defaults")] == [0]
    assert tune(tiny_study, mnist_root, "--trials", "5") == 0  # nothing left to do
    assert len(load(sqlite(tiny_study)).trials) == 5

    exported = json.loads((tiny_study / "tuned" / f"{STUDY}.json").read_text())
    best = study.best_trial
    assert exported["study"] == STUDY == study_name(TrainConfig(epochs=1, train_subset=300), 200)
    assert (exported["trial"], exported["value"]) == (best.number, best.value)
    assert exported["storage"] == "sqlite:///optuna.db"  # relative to the results directory
    assert str(tiny_study) not in (tiny_study / "tuned" / f"{STUDY}.json").read_text()
    assert (exported["model_args"], exported["train"]) == split_params(
        best.params, "gap_cnn", "concat"
    )
    assert set(exported["model_args"]) == {"width", "dropout", "depth", "hidden", "head_dropout"}
    assert TRAIN_SEARCHED <= set(exported["train"])


@pytest.mark.slow
def test_run_tuned_uses_the_export(tiny_study: Path, tmp_path: Path, mnist_root: Path) -> None:
    """Exported values are trained with; flags typed on the command line win over them."""
    shutil.copytree(tiny_study / "tuned", tmp_path / "tuned")
    tuned = json.loads((tmp_path / "tuned" / f"{STUDY}.json").read_text())
    argv = ["run", "--tuned", "--arch", "gap_cnn", "--fusion", "concat", "--epochs", "1"]
    argv += ["--train-subset", "300", "--lr", "0.0025", "--model-arg", "width=8"]
    argv += ["--model-arg", "depth=1", "--data-dir", str(mnist_root)]
    assert main([*argv, "--results-dir", str(tmp_path)]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_args"] == {**tuned["model_args"], "width": 8, "depth": 1}
    assert config["lr"] == 0.0025
    assert {k: config[k] for k in tuned["train"] if k != "lr"} == {
        k: v for k, v in tuned["train"].items() if k != "lr"
    }
    assert config["tuned_from"] == {
        "study": STUDY,
        "trial": tuned["trial"],
        "value": tuned["value"],
        "budget": tuned["budget"],
        "file": f"tuned/{STUDY}.json",
        # ... and, where the study's best was its defaults trial, that it was
        **({"defaults": True} if tuned["user_attrs"].get("defaults") else {}),
    }
    assert json.loads((run_dir / "metrics.json").read_text())["tuned"] is True


@pytest.mark.slow
def test_two_workers_share_a_sqlite_study(tmp_path: Path, mnist_root: Path) -> None:
    assert tune(tmp_path, mnist_root, "--trials", "3", "--jobs", "2") == 0
    check_shared_study(load(sqlite(tmp_path)), wanted=3, jobs=2)
    assert (tmp_path / "tuned" / f"{STUDY}.json").is_file()


# ----------------------------------------------------------------------------- PostgreSQL


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_a_postgres_study(
    postgres_url: str, tmp_path: Path, mnist_root: Path
) -> None:
    assert (
        tune(tmp_path, mnist_root, "--trials", "3", "--jobs", "2", "--storage", postgres_url) == 0
    )
    check_shared_study(load(postgres_url), wanted=3, jobs=2)
    exported = json.loads((tmp_path / "tuned" / f"{STUDY}.json").read_text())
    assert exported["storage"] == postgres_url
    assert not (tmp_path / "optuna.db").exists()
    # the report finds the study in the server it was tuned in, given it
    assert main(["report", "--results-dir", str(tmp_path), "--storage", postgres_url]) == 0
    assert f"| {STUDY} | 3 |" in (tmp_path / "report.md").read_text()


# ------------------------------------------------------------------ secrets, caps, budgets


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://bench:s3cret@db.lan/optuna",
        "postgresql+psycopg2://bench@db.lan/optuna?password=s3cret",
        "postgresql+psycopg2://bench@db.lan/optuna?sslmode=require&password=s3cret&x=1",
        "postgresql://bench:s3cret%40x@db.lan/optuna",  # escaped '@'
        "postgresql://bench:s3cret@x/y@db.lan/optuna",  # unescaped '@' and '/'
        "postgresql://bench:p@s3cret@db.lan/optuna",  # the secret after an unescaped '@'
        "postgresql://bench:s3cret?@db.lan:5432/optuna",
        "mysql+pymysql://bench:s3cret@db.lan/optuna?charset=utf8",
        "could not connect: password=s3cret host=db.lan",  # a driver's message
        "could not connect: PASSWORD=s3cret host=db.lan",  # a key in capitals
    ],
)
def test_passwords_are_masked_in_every_url_form(url: str) -> None:
    label = storage_label(url)
    assert "s3cret" not in label and "***" in label
    assert "db.lan" in label


def test_the_storage_flag_is_taken_before_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--storage`` names where the studies go for this command; $OPTUNA_STORAGE is what is
    taken where no flag was given, and the results directory's optuna.db where neither was."""
    from benchmark.storages import storage_spec

    flag, env = f"journal:{tmp_path / 'flag.log'}", f"journal:{tmp_path / 'env.log'}"
    monkeypatch.setenv("OPTUNA_STORAGE", env)
    assert storage_spec(flag, tmp_path) == flag
    assert storage_spec(None, tmp_path) == env
    monkeypatch.delenv("OPTUNA_STORAGE")
    assert storage_spec(None, tmp_path) == f"sqlite:///{tmp_path / 'optuna.db'}"


def test_status_of_a_server_that_does_not_answer_is_one_line(tmp_path: Path, capsys) -> None:
    """``compare --status`` opens its storage to read only: a server that does not answer is
    the one line any command gives, exit 2, nothing written."""
    server = "postgresql+psycopg2://bench:s3cret@127.0.0.1:1/optuna"  # port 1: none answers
    argv = ["compare", "--status", "--storage", server, "--results-dir", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot open it" in err and "s3cret" not in err
    assert not (tmp_path / "r").exists()


def test_storage_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """$OPTUNA_STORAGE keeps the URL out of argv; a password in it is never printed."""
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql+psycopg2://bench:s3cret@/optuna?host=/nowhere")
    assert main(["tune", "--results-dir", str(tmp_path), "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot open it" in err and "s3cret" not in err
    assert "error: $OPTUNA_STORAGE postgresql" in err  # not "--storage": no flag was given
    assert not (tmp_path / "optuna.db").exists()


def test_a_suggestion_over_the_cap_is_rejected_before_training() -> None:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(default_params("gap_cnn", "concat"))
    base = TrainConfig(epochs=1)
    # data=None, ex=None: the trial must end before anything touches the data or the device
    study.optimize(lambda t: objective(t, base, None, None, max_params=1000), n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED and trial.user_attrs["over_cap"] == 1000
    assert trial.user_attrs["params"] > 1000
    assert finished_count(study) == 0  # costs nothing, does not count towards --trials
    assert study_name(base, None, 1000).endswith("__p1000")


def test_a_storage_file_tune_creates_is_said_to_be_new(small_data, tmp_path: Path, capsys) -> None:
    """A mistyped --storage path starts a study afresh in a new file: the first line says so,
    and says nothing of a storage that was there."""
    storage = f"sqlite:///{tmp_path / 'sub' / 'typo.db'}"
    argv = ["tune", "--arch", "small_cnn", "--fusion", "late_sum", "--epochs", "1"]
    argv += ["--results-dir", str(tmp_path), "--storage", storage]
    assert main([*argv, "--trials", "1"]) == 0
    assert f"a new storage: {storage}\n" in capsys.readouterr().out
    assert main([*argv, "--trials", "2"]) == 0
    assert "a new storage" not in capsys.readouterr().out


@pytest.mark.parametrize("command", ["tune", "compare"])
def test_a_cap_below_every_suggestion_stops_the_study_in_one_line(
    command: str, small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Each suggestion over the cap is rejected and not counted: a cap below the smallest model
    kept a study suggesting for ever. It is refused before a study exists where neither the
    defaults nor as many random points as a study may reject in a row fit (it ended after 100
    rejected trials written into the study); in a study, a run of them in a row ends it."""
    from benchmark import tuning

    monkeypatch.setattr(tuning, "OVER_CAP_IN_A_ROW", 4)
    argv = [command, "--arch", "small_cnn", "--fusion", "late_sum", "--max-params", "10"]
    argv += ["--trials", "2", "--epochs", "1", "--results-dir", str(tmp_path)]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert (
        "--max-params 10: neither the defaults nor 3 random points of small_cnn x late_sum's "
        "search space fit under it (the smallest had "
    ) in line and line.endswith("parameters); give a larger cap")
    assert list(tmp_path.iterdir()) == []  # no storage, no study
    monkeypatch.setattr(f"benchmark.commands.{command}.check_cap", lambda *args: None)
    assert main(argv) == 2  # the study's own guard: a sampler may not go where points fit
    line = one_line(capsys.readouterr().err)
    assert "--max-params 10: the last 4 suggestions of study small_cnn__late_sum__e1" in line
    assert "were all over it (the smallest had " in line and "give a larger cap" in line


def test_tuned_parameters_of_another_budget_need_asking(tmp_path: Path) -> None:
    write_export(tmp_path, epochs=1, lr=0.0123)
    with pytest.raises(UsageError, match="another budget.*--tuned-any-budget"):
        apply_tuned(TrainConfig(epochs=4), (), tmp_path)
    # it says which flags train at the export's budget
    with pytest.raises(UsageError, match=r"the one asked \(epochs 4\): \S+e1 \(with --epochs 1\);"):
        apply_tuned(TrainConfig(epochs=4), (), tmp_path)
    asked = TrainConfig(epochs=1, train_subset=2000, optimizer="sgd")
    with pytest.raises(UsageError, match="with --optimizer adamw, without --train-subset\\)"):
        apply_tuned(asked, (), tmp_path)
    cfg = apply_tuned(TrainConfig(epochs=4), (), tmp_path, any_budget=True)
    assert cfg.lr == 0.0123 and cfg.tuned_from["study"] == "gap_cnn__concat__e1"
    assert cfg.tuned_from["file"] == "tuned/gap_cnn__concat__e1.json"
    write_export(tmp_path, epochs=4, lr=0.0123)  # now one at the run's budget exists: it wins
    assert apply_tuned(TrainConfig(epochs=4), (), tmp_path).tuned_from["study"].endswith("e4")
    named = apply_tuned(TrainConfig(epochs=4), (), tmp_path, study="gap_cnn__concat__e1")
    assert named.tuned_from["study"] == "gap_cnn__concat__e1"


def test_a_record_of_the_defaults_trial_says_so_in_tuned_from() -> None:
    """A run tuned with its study's defaults trial records it (the report names its group the
    default); the record changes nothing the run learns, so not its config hash."""
    from benchmark.exports import apply_record

    cfg = TrainConfig(epochs=1)
    model_args, train = split_params(default_params("gap_cnn", "concat"), "gap_cnn", "concat")
    record = {"study": study_name(cfg, None), "trial": 0, "value": 0.5,
              "budget": budget(cfg, None), "model_args": model_args, "train": train}  # fmt: skip
    plain = apply_record(cfg, record)
    kept = apply_record(cfg, record | {"user_attrs": {"defaults": True, "params": 85357}})
    assert "defaults" not in plain.tuned_from and kept.tuned_from["defaults"] is True
    assert kept.config_hash() == plain.config_hash()


# ---------------------------------------------------------------------------- hard kills


def wait_for_running(storage: str, name: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            trials = load(storage, name).trials
        except KeyError:  # the study does not exist yet
            trials = []
        if any(t.state == TrialState.RUNNING for t in trials):
            return
        time.sleep(0.2)
    raise AssertionError("no trial started")


@pytest.mark.slow
def test_sigkill_during_the_defaults_trial_then_rerun(
    tmp_path: Path, mnist_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed with SIGKILL leaves its trial RUNNING; after the grace period the next
    run fails it, re-queues it (the defaults) and ends with the wanted finished trials."""
    flags = ["--epochs", "1", "--train-subset", "4000", "--val-subset", "200"]  # seconds long
    name = study_name(TrainConfig(epochs=1, train_subset=4000), 200)
    argv = [sys.executable, "-m", "benchmark", "tune", "--arch", "gap_cnn", "--fusion", "concat"]
    argv += [*flags, "--data-dir", str(mnist_root), "--results-dir", str(tmp_path)]
    proc = subprocess.Popen([*argv, "--trials", "2"], stdout=subprocess.DEVNULL)
    try:
        wait_for_running(sqlite(tmp_path), name)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (killed,) = load(sqlite(tmp_path), name).trials
    assert killed.state == TrialState.RUNNING and killed.user_attrs["defaults"]
    monkeypatch.setattr("benchmark.storages.HEARTBEAT_S", 1)
    monkeypatch.setattr("benchmark.storages.GRACE_S", 2)  # the real one is 40 s
    time.sleep(3)
    assert (
        main(
            [
                "tune",
                "--arch",
                "gap_cnn",
                "--fusion",
                "concat",
                *flags,
                "--trials",
                "2",
                "--data-dir",
                str(mnist_root),
                "--results-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    trials = load(sqlite(tmp_path), name).trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert sum(t.state in FINISHED for t in trials) == 2
    (defaults,) = [t for t in trials if t.user_attrs.get("defaults") and t.state in FINISHED]
    assert defaults.state == TrialState.COMPLETE
    assert defaults.params == default_params("gap_cnn", "concat")


@pytest.mark.slow
def test_a_dead_worker_is_named_and_the_survivors_exported(
    tmp_path: Path, mnist_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from benchmark.commands import tune as command

    real = command.worker_argv

    def one_dies(args, cfg, study, index):
        if index == 2:
            return [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 9)"]
        return real(args, cfg, study, index)

    monkeypatch.setattr(command, "worker_argv", one_dies)
    assert tune(tmp_path, mnist_root, "--trials", "3", "--jobs", "2") == 0
    out = capsys.readouterr().out
    assert "worker 2 (pid" in out and "killed by SIGKILL" in out
    assert (tmp_path / "tuned" / f"{STUDY}.json").is_file()
    assert finished_count(load(sqlite(tmp_path))) >= 3


@pytest.mark.parametrize(
    ("url", "module", "hint"),
    [
        (
            "postgresql+psycopg2://bench:s3cret@db.lan/optuna",
            "psycopg2",
            'pip install -e ".[postgres]"',
        ),
        (
            "mysql+pymysql://bench:s3cret@db.lan/optuna",
            "pymysql",
            "a SQLAlchemy driver for mysql+pymysql",
        ),
    ],
)
@pytest.mark.parametrize("opener", ["open_storage", "open_to_read"])
def test_a_storage_without_its_driver_says_which_to_install(
    url: str, module: str, hint: str, opener: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Optuna says only "Failed to import DB access module"; the one line names the module and
    how to install it, the password masked. Opened to read (``compare --status``), it was a
    traceback."""
    from benchmark import storages

    monkeypatch.setitem(sys.modules, module, None)  # as where it is not installed
    with pytest.raises(UsageError) as caught:
        getattr(storages, opener)(url)
    said = str(caught.value)
    assert "cannot open it: its database driver is not installed (" in said, said
    assert module in said and said.endswith(hint) and "s3cret" not in said


def test_an_interrupted_tune_says_what_it_keeps(
    tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Ctrl-C during the trials: exit 130 and one sentence on the study's finished trials, its
    count agreeing with its noun ("1 finished trial", not "the 1 finished trials"), and the
    command that exports their best without tuning more (which works)."""
    from benchmark import exports, tuning

    def one_trial_then_ctrl_c(study: optuna.Study, *args: object, **kwargs: object) -> None:
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
        raise KeyboardInterrupt

    monkeypatch.setattr(tuning, "optimize", one_trial_then_ctrl_c)
    assert tune(tmp_path, synthetic_root, "--trials", "3") == 130
    out = " ".join(capsys.readouterr().out.split())
    said = f"interrupted: study {STUDY} keeps its 1 finished trial, its best not exported yet;"
    now = ", or with --arch gap_cnn --fusion concat --trials 1 to export the best of those now"
    assert said + " run the same command again to continue it" + now in out
    assert not (tmp_path / "tuned").exists()
    monkeypatch.setattr(tuning, "optimize", pytest.fail)  # tunes nothing more
    exported = []  # the study's best, exported (its trial has no parameters to write)
    monkeypatch.setattr(exports, "export_best", lambda study, *_: exported.append(study.best_value))
    assert tune(tmp_path, synthetic_root, "--trials", "1") == 0 and exported == [0.5]


def test_a_tune_asked_for_fewer_trials_than_done_says_so(
    tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """--trials is the study's total: 2 on a study of 3 finished read "3 of 2 trials finished"
    and its bar "3/2". And a study keeps its pruner: another was taken without a word."""
    from benchmark import exports, tuning

    def three_trials(study: optuna.Study, *args: object, **kwargs: object) -> None:
        for value in (0.5, 0.6, 0.7):
            study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=value))

    monkeypatch.setattr(tuning, "optimize", three_trials)
    monkeypatch.setattr(exports, "export_best", lambda *args: None)  # no parameters to export
    assert tune(tmp_path, synthetic_root, "--trials", "3") == 0
    # the trials another worker finished (added here behind the bar's back) are shown at the end
    first = " ".join(capsys.readouterr().out.split())
    assert "gap_cnn x concat trial 2 complete" in first and " 3/3 " in first
    assert tune(tmp_path, synthetic_root, "--trials", "3") == 0  # done: no trial, no words
    again = " ".join(capsys.readouterr().out.split())
    assert "gap_cnn x concat: 3 of 3 trials finished" in again and "nothing to tune" not in again
    assert tune(tmp_path, synthetic_root, "--trials", "2") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "3 trials finished, more than --trials 2: nothing to tune" in out
    assert " 3/3 " in out and "3 of 2" not in out and "3/2" not in out
    # a study under one pruner: another would mix two rules in its counts of pruned trials
    assert tune(tmp_path, synthetic_root, "--trials", "4", "--pruner", "halving") == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(
        "was tuned with median pruning, not halving; give --pruner median or another --study NAME"
    )


def test_a_dead_worker_leaving_the_study_short_fails_the_tune_and_stops_the_grid(
    tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """--jobs 4 --trials 3: the queued defaults trial runs here first, then one worker per trial
    left (3, not 4), sharing the cores; a worker that died leaving the study short is exit 1 with
    how to finish it, and the grid's next study is not started."""
    import os

    from benchmark import exports, tuning
    from benchmark.commands import tune as tune_command

    here: list[int] = []
    started: list[list[str]] = []

    def record(study: optuna.Study, cfg: object, data: object, ex: object, trials: int, *a, **k):
        here.append(trials)

    def one_dies(commands: list[list[str]], storage: str, refresh: object) -> list[str]:
        started.extend(commands)
        return ["worker 1 exited with status 1"]

    monkeypatch.setattr(tuning, "optimize", record)
    monkeypatch.setattr(tuning, "load_data", lambda *args: None)  # no trial trains here
    monkeypatch.setattr(tune_command, "run_workers", one_dies)
    monkeypatch.setattr(exports, "export_best", lambda *args: None)
    grid = ["--arch", "gap_cnn,small_cnn", "--trials", "3", "--jobs", "4"]
    assert tune(tmp_path, synthetic_root, *grid) == 1  # its --arch, typed last, is taken
    assert here == [1]  # the defaults trial, here, once: not in the workers nor the next study
    threads = str(max(1, (os.cpu_count() or 1) // 3))
    assert [argv[argv.index("--worker") + 1] for argv in started] == ["1", "2", "3"]
    assert {argv[argv.index("--threads") + 1] for argv in started} == {threads}
    assert {argv[argv.index("--arch") + 1] for argv in started} == {"gap_cnn"}
    out = " ".join(capsys.readouterr().out.split())
    assert "worker 1 exited with status 1" in out
    assert "has 0 of 3 finished trials; run the same command again to finish it" in out


def test_the_best_line_keeps_brackets_and_its_path_whole(
    tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A categorical value such as "[a]" is text, not console markup, and the export's path
    is never broken across lines however narrow the console."""
    from benchmark import exports, tuning
    from benchmark.progress import console

    def three_trials(study: optuna.Study, *args: object, **kwargs: object) -> None:
        for _ in range(3):
            study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))

    path = tmp_path / "a-long-folder-name-for-the-exports" / "tuned" / f"{STUDY}.json"
    record = {"trial": 0, "value": 0.5, "model_args": {"block": "[a]"}, "train": {"lr": 0.01}}
    monkeypatch.setattr(tuning, "optimize", three_trials)
    monkeypatch.setattr(exports, "export_best", lambda *args: (path, record))
    monkeypatch.setattr(console, "width", 40)
    assert tune(tmp_path, synthetic_root, "--trials", "3") == 0
    (line,) = [s for s in capsys.readouterr().out.splitlines() if s.startswith("best:")]
    assert "model block=[a];" in line and line.endswith(f"-> {path}")


@pytest.mark.parametrize("value", [0.0108, 0.099, 0.19, 0.5])  # under 10%: a digit's guess
def test_a_best_trial_that_learned_nothing_is_said_so(
    value: float, tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """tune exported a best of 1.08% val joint acc without a word, where run, report and
    compare all say such a model learned nothing."""
    from benchmark import exports, tuning

    def one_trial(study: optuna.Study, *args: object, **kwargs: object) -> None:
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=value))

    record = {"trial": 0, "value": value, "model_args": {}, "train": {"lr": 0.01}}
    monkeypatch.setattr(tuning, "optimize", one_trial)
    monkeypatch.setattr(exports, "export_best", lambda *args: (tmp_path / "x.json", record))
    assert tune(tmp_path, synthetic_root, "--trials", "1") == 0
    out = " ".join(capsys.readouterr().out.split())  # as wrapped to the console
    said = (
        "note: its 1.08% val joint acc (digit and sum both right) says the trials learned next "
        "to nothing at this budget; give more --epochs or a larger --train-subset"
    )
    assert (said in out) is (value == 0.0108) and ("learned next to" in out) is (value < 0.1)


@pytest.mark.parametrize("given", ["config", "flags"])
def test_a_timm_vit_is_tuned_with_the_sizes_held_fixed(
    given: str, tmp_path: Path, synthetic_root: Path, capsys
) -> None:
    """A timm ViT's img_size and patch_size, in ``tune --config`` (which then names the model:
    no --arch) or as ``--model-arg``s: every trial trains with those sizes (the search tunes
    drop_rate, not them), the study's name and budget hold them, and ``run --tuned`` finds the
    export only with the same sizes, or takes them from it when told to accept another budget."""
    held = {"img_size": 28, "patch_size": 7}
    config = tmp_path / "vit.json"
    vit_config = {"arch": "timm:test_vit", "fusion": "late_sum", "model_args": held}
    config.write_text(json.dumps(vit_config))
    results = tmp_path / "results"
    if given == "config":
        common = ["--config", str(config)]
    else:
        common = ["--arch", "timm:test_vit", "--fusion", "late_sum"]
        common += [arg for key, value in held.items() for arg in ("--model-arg", f"{key}={value}")]
    common += [*TINY[:4], "--data-dir", str(synthetic_root), "--results-dir", str(results)]
    assert main(["tune", *common, "--val-subset", "200", "--trials", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # the count a line of its own, the storage's path after it: a path had wrapped "0 of / 2"
    count = "timm:test_vit x late_sum: 0 of 2 trials finished, held: img_size=28 patch_size=7"
    assert lines[lines.index(count) + 1].startswith("study timm-test_vit__late_sum__e1")
    (export,) = (results / "tuned").iterdir()
    record = json.loads(export.read_text())
    assert record["arch"] == "timm:test_vit" and record["budget"]["fixed"] == {"model_args": held}
    vit = TrainConfig(arch="timm:test_vit", fusion="late_sum", epochs=1, train_subset=300)
    assert export.stem == study_name(replace(vit, model_args=held), 200)
    assert export.stem != study_name(vit, 200)  # another size, another study
    trials = load(sqlite(results), export.stem).trials
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials)
    assert "drop_rate" in record["model_args"] and not held.keys() & record["model_args"].keys()

    run = ["run", "--arch", "timm:test_vit", "--fusion", "late_sum", "--tuned", *TINY[:4]]
    run += ["--results-dir", str(results), "--print-config"]
    capsys.readouterr()
    assert exit_status([*run, "--model-arg", "img_size=28", "--model-arg", "patch_size=4"]) == 2
    assert "(with --model-arg patch_size=7)" in one_line(capsys.readouterr().err)
    for typed in (["--model-arg", "img_size=28", "--model-arg", "patch_size=7"], []):
        flags = typed or ["--tuned-any-budget"]  # none typed: the export's own sizes
        assert main([*run, *flags]) == 0
        printed = json.loads(capsys.readouterr().out)  # the tuned-parameters line: on stderr
        assert printed["model_args"] == {**held, **record["model_args"]}


@pytest.mark.parametrize("command", ["tune", "compare"])
def test_a_model_argument_held_fixed_that_tuning_searches_is_refused(
    command: str, tmp_path: Path, capsys
) -> None:
    """gap_cnn's width is searched: held fixed in the config, every trial would replace it."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model_args": {"width": 8}}))
    results = tmp_path / "results"
    argv = [command, "--config", str(config), "--results-dir", str(results)]
    argv += ["--trials", "1", *TINY[:4]]  # were it let through: one short trial, not hours
    argv += ["--tune-only", "--seeds", "0"] if command == "compare" else []
    assert exit_status(argv) == 2
    assert "gap_cnn x concat: tuning searches width, so a value held fixed would be" in one_line(
        capsys.readouterr().err
    )
    assert not results.exists()
    argv[1:3] = ["--model-arg", "width=8"]  # the same, typed
    assert exit_status(argv) == 2
    assert "tuning searches width" in capsys.readouterr().err and not results.exists()


def test_tune_workers_hold_the_same_model_arguments() -> None:
    """``tune --jobs N``'s workers get the ``--model-arg``s typed: the same study, not one of
    a model that cannot take 28x28 images."""
    from benchmark.cli import build_parser
    from benchmark.commands.tune import worker_argv

    flags = ["tune", "--arch", "timm:test_vit", "--model-arg", "img_size=28"]
    args = build_parser().parse_args([*flags, "--model-arg", "patch_size=7", "--jobs", "2"])
    cfg = TrainConfig(arch="timm:test_vit", model_args={"img_size": 28, "patch_size": 7})
    argv = worker_argv(args, cfg, "s", 1)
    assert argv[argv.index("--model-arg") :][:4] == [
        "--model-arg", "img_size=28", "--model-arg", "patch_size=7",
    ]  # fmt: skip


def test_a_tune_worker_reads_back_every_setting_its_parent_was_given() -> None:
    """``tune --jobs N``'s workers tune the same study: their command line, read back, holds the
    parent's plug-ins, config file, budget, seed, caps and fixed settings (a ``--no-`` flag as
    typed), and only the study name, the worker number and the shared-out threads differ."""
    from benchmark.cli import build_parser
    from benchmark.commands.tune import worker_argv

    parent = ["tune", "--arch", "gap_cnn", "--fusion", "concat", "--jobs", "2", "--seed", "3"]
    parent += ["--plugin", "digitsum_plugin_example", "--config", "c.toml", "--trials", "7"]
    parent += ["--timeout", "30", "--val-subset", "200", "--max-params", "5000"]
    parent += ["--pruner", "halving", "--results-dir", "r", "--epochs", "2", "--compile"]
    parent += ["--no-channels-last", "--train-subset", "512", "--model-arg", "width=8"]
    args = build_parser().parse_args(parent)
    argv = worker_argv(args, TrainConfig(threads=4), "s", 1)
    assert argv[1:3] == ["-m", "benchmark"]
    worker = vars(build_parser().parse_args(argv[3:]))
    differ = {k: (v, worker[k]) for k, v in vars(args).items() if worker[k] != v}
    shared_out = {"study": (None, "s"), "jobs": (2, 1), "worker": (None, 1), "threads": (None, 4)}
    assert differ == shared_out


def test_a_grid_holds_each_model_argument_for_the_combinations_that_take_it(
    tmp_path: Path, synthetic_root: Path, capsys
) -> None:
    """gap_cnn beside a timm ViT held at 28 pixels: the ViT's study holds the sizes, gap_cnn's
    is the study it would be alone; a worker of gap_cnn's study, given the grid's model args,
    takes its combination's share (none) instead of refusing the ViT's."""
    results = tmp_path / "results"
    sized = ["--model-arg", "img_size=28", "--model-arg", "patch_size=7"]
    common = [*TINY, "--trials", "1", "--data-dir", str(synthetic_root)]
    common += ["--results-dir", str(results), *sized]
    assert main(["tune", "--arch", "gap_cnn,timm:test_vit", "--fusion", "late_sum", *common]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "img_size=28 patch_size=7: not taken by gap_cnn x late_sum, built without them" in out
    alone = TrainConfig(arch="gap_cnn", fusion="late_sum", epochs=1, train_subset=300)
    vit = replace(alone, arch="timm:test_vit", model_args={"img_size": 28, "patch_size": 7})
    names = {study_name(alone, 200), study_name(vit, 200)}
    assert {p.stem for p in (results / "tuned").iterdir()} == names
    gap = json.loads((results / "tuned" / f"{study_name(alone, 200)}.json").read_text())
    assert gap["budget"]["fixed"] == {}
    worker = ["tune", "--arch", "gap_cnn", "--fusion", "late_sum", *common, "--trials", "2"]
    assert main([*worker, "--study", study_name(alone, 200), "--worker", "0"]) == 0
    assert len(load(sqlite(results), study_name(alone, 200)).trials) == 2
    assert exit_status(worker) == 2  # typed by a user, the one combination must take them
    assert "unknown hyperparameter 'img_size' for gap_cnn x late_sum" in capsys.readouterr().err


def test_a_storage_it_may_not_write_is_not_called_damaged() -> None:
    """sqlite says "attempt to write a readonly database" of a file of mode 444: the line said
    "damaged or unreachable: repair it" of a sound file."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from benchmark.errors import UsageError
    from benchmark.storages import storage_errors

    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    with pytest.raises(UsageError) as found:  # not damaged: exit 2, as any unwritable output
        with storage_errors("sqlite:///results/optuna.db"):
            raise OperationalError("INSERT INTO trials", {}, readonly)
    said = str(found.value)
    assert "cannot write the Optuna storage (attempt to write a readonly database)" in said
    assert "make the file and its folder writable" in said and "damaged" not in said


def test_a_storage_file_this_user_may_not_write_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A 444 optuna.db passed every early check and failed once the data had loaded."""
    import os

    db = tmp_path / "optuna.db"
    db.write_bytes(b"")
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != db)  # (root writes anything)
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    assert main(["tune", "--results-dir", str(tmp_path), "--trials", "1"]) == 2
    assert f"{db}: not writable by this user" in one_line(capsys.readouterr().err)


def study_of_two(values: tuple[float, float]) -> optuna.Study:
    """A study as tune opens it (its budget recorded, the defaults queued), two trials told."""
    storage = optuna.storages.InMemoryStorage()
    study = tuning.open_study(storage, "s", TrainConfig(epochs=1), None)
    for value in values:
        trial = study.ask()
        tuning.suggest(trial, "gap_cnn", "concat")
        study.tell(trial, value)
    return study


def test_the_export_is_the_trial_of_highest_joint_accuracy(tmp_path: Path) -> None:
    from benchmark.exports import best_record

    for values, best in (((0.8, 0.2), 0), ((0.2, 0.8), 1)):
        record = best_record(study_of_two(values), "sqlite:///x.db", tmp_path)
        assert (record["trial"], record["value"]) == (best, 0.8)


def test_a_suggestion_at_the_cap_itself_is_within_it() -> None:
    """compare's cap is the largest default model's count: at the cap is allowed (here it goes
    on to the next check, which finds no place left for it)."""
    study = tuning.open_study(optuna.storages.InMemoryStorage(), "s", TrainConfig(), None)
    trial = study.ask()  # the defaults trial
    cap = tuning.count_model_params(TrainConfig())
    with pytest.raises(optuna.TrialPruned, match="held by other workers"):
        tuning.objective(trial, TrainConfig(), None, None, max_params=cap, trials=0)
    assert trial.user_attrs["params"] == cap and "over_cap" not in trial.user_attrs


def test_a_trials_value_is_its_last_epochs_validation_joint_accuracy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its last epoch's, not its best; each epoch reports the same figure to the pruner (what
    the study maximises, not the sum's accuracy), and its throughput counts images, not steps."""
    from benchmark.trainer import EpochStats, Progress

    def two_epochs(cfg, data, ex, state, listen, step_every) -> None:
        for epoch, joint in ((1, 0.4), (2, 0.3)):
            val = {"joint_acc": joint, "sum_acc": 0.7, "digit_acc": 0.7, "consistency": 0.5}
            stats = EpochStats(epoch, 0.1, 0.5, val, 0.001, 1.0)
            state.history.append(stats)
            state.step, state.train_seconds = 4 * epoch, 2.0 * epoch
            listen(Progress(state.step, 8, epoch, 0.1, 0.5, stats, state))

    monkeypatch.setattr("benchmark.trainer.train", two_epochs)  # imported when called
    cfg = TrainConfig(epochs=2, **PLAIN_CPU)
    cfg, ex = hardware.decide(cfg)
    study = tuning.open_study(optuna.storages.InMemoryStorage(), "s", cfg, None)
    assert tuning.objective(study.ask(), cfg, None, ex) == 0.3  # the defaults: never pruned
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.intermediate_values == {1: 0.4, 2: 0.3}
    assert trial.user_attrs["images_per_s"] == 8 * cfg.batch_size / 4.0


def test_a_trial_that_diverges_is_pruned_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """It finished, badly: pruned (counted towards --trials), and its line in tune's output
    gives the trainer's words."""
    from benchmark.errors import TrainingFailed

    said = "non-finite loss at epoch 1, steps 1-4, lr 1e+09"

    def diverging(cfg, data, ex, state, listen, step_every) -> None:
        raise TrainingFailed(said)

    monkeypatch.setattr("benchmark.trainer.train", diverging)  # imported when called
    cfg, ex = hardware.decide(TrainConfig(epochs=1, **PLAIN_CPU))
    study = tuning.open_study(optuna.storages.InMemoryStorage(), "s", cfg, None)
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match=re.escape(said)):
        tuning.objective(trial, cfg, None, ex)
    assert trial.user_attrs["diverged"] == said


def test_a_flag_typed_wins_over_the_tuned_value() -> None:
    from benchmark.exports import apply_record

    record = {"study": "s", "trial": 0, "value": 0.5, "budget": {}, "model_args": {}}
    record["train"] = {"lr": 0.01}
    assert apply_record(TrainConfig(lr=0.0025), record, explicit={"lr"}).lr == 0.0025
    assert apply_record(TrainConfig(lr=0.0025), record).lr == 0.01


def test_a_trials_place_counts_the_finished_and_the_running_before_it_not_itself() -> None:
    """A trial that counted itself would find no place in a study of one trial left, and its
    worker would ask again for ever."""
    study = optuna.create_study(direction="maximize")
    done = study.ask()
    study.tell(done, 0.5)
    earlier, mine = study.ask(), study.ask()  # a worker's trial running before this one
    assert tuning.places_taken(mine) == 2 and tuning.places_taken(earlier) == 1
    study.tell(earlier, 0.6)
    assert tuning.places_taken(mine) == 2  # finished now: still one place


def test_a_study_opened_at_another_budget_names_what_differs() -> None:
    """It printed both settings whole, two dicts of nine keys, for a study asked at 2 epochs."""
    from benchmark import tuning

    storage = optuna.storages.InMemoryStorage()
    tuning.open_study(storage, "s", TrainConfig(epochs=1), None)
    with pytest.raises(UsageError) as caught:
        tuning.open_study(storage, "s", TrainConfig(epochs=2), 500)
    assert str(caught.value) == (
        "study 's' was tuned with epochs 1, not 2; val_subset None, not 500; give the same "
        "settings or another --study NAME"
    )


def test_a_study_of_an_older_budget_record_opens_at_the_same_settings() -> None:
    """Studies tuned before the parameter cap and the fixed settings were recorded lack both
    keys: read as no cap and nothing fixed, they go on, rather than being called another
    budget."""
    storage = optuna.storages.InMemoryStorage()
    study = tuning.open_study(storage, "s", TrainConfig(), None)
    recorded = study.user_attrs["budget"]
    older = {k: v for k, v in recorded.items() if k not in ("max_params", "fixed")}
    study.set_user_attr("budget", older)
    assert tuning.open_study(storage, "s", TrainConfig(), None).user_attrs["budget"] == older


def test_a_trial_that_trained_every_epoch_is_never_pruned_after_its_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pruned after its last epoch, a trial that had trained in full lost its value: it could
    never be the best, and its epochs were spent for nothing."""
    from benchmark.trainer import EpochStats, Progress

    class Always(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return True

    def last_epoch(cfg, data, ex, state, listen, step_every) -> None:
        val = {"joint_acc": 0.3, "sum_acc": 0.7, "digit_acc": 0.7, "consistency": 0.5}
        stats = EpochStats(cfg.epochs, 0.1, 0.5, val, 0.001, 1.0)
        state.history.append(stats)
        state.step, state.train_seconds = 10, 1.0
        listen(Progress(10, 10, cfg.epochs, 0.1, 0.5, stats, state))

    monkeypatch.setattr("benchmark.trainer.train", last_epoch)  # imported when called
    cfg, ex = hardware.decide(TrainConfig(epochs=2, **PLAIN_CPU))
    study = optuna.create_study(direction="maximize", pruner=Always())
    assert tuning.objective(study.ask(), cfg, None, ex) == 0.3


def test_suggestions_over_the_cap_stop_a_study_only_when_they_come_in_a_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counted over the whole study rather than in a row, rejections scattered among trained
    trials stopped a study whose cap admits most of the space, as if it admitted none."""
    monkeypatch.setattr(tuning, "OVER_CAP_IN_A_ROW", 3)

    def two_over_then_one_within(trial, base, data, ex, max_params, trials) -> float:
        trial.set_user_attr("params", 20)
        if trial.number % 3 < 2:
            trial.set_user_attr("over_cap", max_params)
            raise optuna.TrialPruned("over the cap")
        return 0.5

    monkeypatch.setattr(tuning, "objective", two_over_then_one_within)
    study = optuna.create_study(direction="maximize")
    tuning.optimize(study, TrainConfig(), None, None, 4, max_params=10)
    assert tuning.finished_count(study) == 4 and len(study.trials) == 12


def test_a_worker_resuming_a_study_does_not_draw_its_first_sittings_trials_again() -> None:
    """Seeded alike in every sitting, a numbered worker's sampler replayed its draws: a study
    resumed by it tried again the parameters it had already tried."""
    study = optuna.create_study(direction="maximize")

    def sitting(trials: int) -> list[float]:
        study.sampler = tuning.sampler(0, len(study.trials), 1)  # as tune and compare seed it
        drawn = []
        for _ in range(trials):
            trial = study.ask()
            drawn.append(trial.suggest_float("lr", 1e-4, 1e-1, log=True))
            study.tell(trial, 0.5)
        return drawn

    first = sitting(3)
    assert not set(first) & set(sitting(3))


def test_an_export_keeps_no_worker_name(tmp_path: Path) -> None:
    """Each trial records its owner (``host:pid``) for the storage's sake; an export is a file of
    ``results/`` that is shared and committed, where nothing machine-specific belongs."""
    from benchmark import exports

    study = optuna.create_study(direction="maximize", study_name="gap_cnn__concat__e1")
    study.set_user_attr("budget", {"arch": "gap_cnn", "fusion": "concat", "epochs": 1})
    trial = study.ask()
    tuning.suggest(trial, "gap_cnn", "concat")
    trial.set_user_attr("worker", "my-laptop.local:4242")
    trial.set_user_attr("params", 85357)
    study.tell(trial, 0.5)
    record = exports.best_record(study, f"sqlite:///{tmp_path / 'optuna.db'}", tmp_path)
    assert record is not None and record["user_attrs"] == {"params": 85357}


def test_an_export_whose_budget_epochs_is_no_number_is_a_damaged_file(tmp_path: Path) -> None:
    """A hand-edited budget (``"epochs": "1"``) matches no run's: ``run --tuned`` told the user
    the export was tuned at another budget, and to type flags that could never match it, not
    that the file is damaged (exit 1, the file and the field named)."""
    from benchmark.exports import read_export

    name = write_export(tmp_path, 1)
    path = tmp_path / "tuned" / f"{name}.json"
    found = json.loads(path.read_text())
    found["budget"]["epochs"] = "1"
    path.write_text(json.dumps(found))
    with pytest.raises(DamagedFileError, match="not an export of `tune`.*budget epochs '1'"):
        read_export(path)


def test_two_exports_at_the_run_budget_are_named_not_one_picked_silently(tmp_path: Path) -> None:
    """Studies that differ only in what the run does not fix (their validation subset) both fit
    ``run --tuned``: taking the first by name would train with parameters the user never chose."""
    name = write_export(tmp_path, 1)
    found = json.loads((tmp_path / "tuned" / f"{name}.json").read_text())
    other = f"{name}__v100000"
    found["study"], found["budget"]["val_subset"] = other, 100000
    (tmp_path / "tuned" / f"{other}.json").write_text(json.dumps(found))
    with pytest.raises(UsageError, match=rf"several exports fit \({name}, {other}\); choose one"):
        apply_tuned(TrainConfig(epochs=1), (), tmp_path)


def test_a_model_argument_typed_wins_over_the_tuned_one() -> None:
    """``--model-arg width=8`` with ``--tuned``: the typed value trains, as a typed flag does."""
    from benchmark.exports import apply_record

    cfg = TrainConfig(epochs=1)
    model_args, train = split_params(default_params("gap_cnn", "concat"), "gap_cnn", "concat")
    record = {"study": study_name(cfg, None), "trial": 0, "value": 0.5,
              "budget": budget(cfg, None), "model_args": model_args | {"width": 32},
              "train": train}  # fmt: skip
    typed = replace(cfg, model_args={"width": 8})
    assert apply_record(typed, record).model_args == model_args | {"width": 8}
    assert apply_record(cfg, record).model_args["width"] == 32


def test_a_bad_model_argument_value_in_a_grid_is_its_own_line_not_models_that_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``width=0`` on two combinations is a value to fix, said as one model's would be; it is
    not "2 of 2 models cannot run on 1x28x28 images (leave them out of --arch)"."""
    monkeypatch.setattr(tuning, "optimize", lambda *a, **k: pytest.fail("tuned"))
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    results = tmp_path / "results"
    argv = ["tune", "--arch", "gap_cnn,small_cnn", "--fusion", "concat", "--model-arg", "width=0"]
    assert exit_status([*argv, *TINY, "--trials", "1", "--results-dir", str(results)]) == 2
    assert one_line(capsys.readouterr().err).endswith(
        "error: width=0 for gap_cnn: expected int in 1..256"
    )
    assert not results.exists()
