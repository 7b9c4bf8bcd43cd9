"""What a person sees while ``run`` trains: at 80 columns in a terminal (one live line, erased at
the end, nothing wider than the screen) and into a pipe (plain lines, one per epoch); a sweep's
rows tell its runs apart; finished runs drop checkpoint.pt; a busy machine's probe is not
cached."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import exit_status, screen
from rich.console import Console

from benchmark import hardware, rundir
from benchmark.progress import RunsProgress

WIDTH = 80
TINY = ["--epochs", "2", "--batch-size", "64", "--eval-batch-size", "100", "--threads", "1"]
TINY += ["--precision", "fp32", "--no-channels-last", "--results-dir", "out"]
TINY += ["--model-arg", "width=4"]  # what is shown is under test here, not the model
SWEEP = ["run", "--lr", "1e-3,3e-3", "--seeds", "0,1", *TINY]


def use_console(monkeypatch: pytest.MonkeyPatch, terminal: bool) -> io.StringIO:
    """Every command's console replaced by one ``WIDTH`` columns wide writing to a buffer: a
    terminal (cursor controls, live display) or a pipe."""
    out = io.StringIO()
    console = Console(
        file=out, width=WIDTH, force_terminal=terminal, color_system=None, highlight=False
    )
    for module in ("benchmark.progress", "benchmark.commands.common", "benchmark.commands.run"):
        monkeypatch.setattr(f"{module}.console", console)
    return out


def table_rows(lines: list[str]) -> list[list[str]]:
    """The summary table's data rows, split into cells."""
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("───"))
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_the_live_line_fits_every_width() -> None:
    shown = RunsProgress(runs=8, steps=1000, estimate=600)
    shown.done, shown.current, shown.epoch, shown.loss = 3, 200, "epoch 2/4", " loss 0.4132"
    shown.label = "timm:resnet10t x embed_add, lr=0.003, batch_size=64, weight_decay=0.0005, seed 1"
    for width in (40, 80, 200):
        out = io.StringIO()
        Console(file=out, width=width, color_system=None).print(shown)
        (line,) = out.getvalue().splitlines()
        assert len(line) <= width
        if width >= 80:
            assert line.startswith("3/8 done ━") and "epoch 2/4 loss 0.4132" in line
            assert " left" in line and "timm:resnet10t" in line


def test_the_live_line_holds_its_time_left_while_a_run_evaluates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Validation and the test split train no step: from the pace the time left climbed while
    they ran, and showed "<1 s left" through a test of seconds. Now the line says which
    evaluation runs, holds the time left, and shows none where under a second remained."""
    from types import SimpleNamespace

    from benchmark import runs
    from benchmark.trainer import Progress

    clock = iter(range(0, 1000, 10))  # each reading 10 s after the last
    monkeypatch.setattr("benchmark.progress.time.monotonic", lambda: next(clock))
    stats = SimpleNamespace(val_sum_acc=0.5, seconds=1.0)
    seen: list[tuple[str, str]] = []  # the line drawn twice after each event, time passing

    def drawn() -> str:
        out = io.StringIO()
        Console(file=out, width=200, color_system=None).print(shown)
        return out.getvalue().strip()

    def execute(cfg, data, run_dir, ex, state=None, listen=None):
        for step, epoch, closing in [(1, 1, False), (2, 1, False), (2, 1, True), (3, 2, False),
                                     (4, 2, False), (4, 2, True)]:  # fmt: skip
            listen(Progress(step, 4, epoch, 0.5, 0.5, stats if closing else None))
            seen.append((drawn(), drawn()))
        return {"test": {"sum_acc": 0.5, "joint_acc": 0.5}}

    def left(line: str) -> str:
        return line.split(" left")[0].rsplit(" ", 2)[-2] if " left" in line else ""

    monkeypatch.setattr(runs, "execute", execute)
    with RunsProgress(runs=1, steps=4) as shown:
        shown.train(SimpleNamespace(epochs=2), None, tmp_path, None, "gap_cnn x concat, seed 0")
    training, validating, trained_on, _, last_validation, testing = seen
    assert "loss 0.5000" in training[0] and left(training[0]) != left(training[1])  # counting
    assert all("epoch 1/2 validating" in line for line in validating)
    assert left(validating[0]) and left(validating[0]) == left(validating[1])  # held, not climbing
    assert "loss 0.5000" in trained_on[0] and left(trained_on[0])
    assert all("epoch 2/2 validating" in line and not left(line) for line in last_validation)
    assert all("epoch 2/2 testing" in line and not left(line) for line in testing)


def test_a_sweep_in_an_80_column_terminal(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = use_console(monkeypatch, terminal=True)
    assert exit_status(SWEEP) == 0
    lines = screen(out.getvalue())
    assert not any("━" in line or re.match(r"\d+/4 done", line) for line in lines), "live line left"
    assert "grid: 4 runs (2 --lr values x 2 seeds)" in lines
    machine = hardware.machine_name(torch.device("cpu"))  # with its features, as its runs record
    assert f"on {machine}, " in " ".join(lines)
    starts = [line for line in lines if re.match(r"\[\d/4\] gap_cnn x concat, lr=", line)]
    assert len(starts) == 4 and len(set(starts)) == 4
    rows = table_rows(lines)
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    assert len({(row[1], row[2]) for row in rows}) == 4  # lr and seed tell every row apart
    run_dirs = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "out" / "runs").iterdir())
    listed = sorted(line.split()[1] for line in lines if re.match(r" +\d  out/runs/", line))
    assert listed == run_dirs  # whole run ids, to copy


def test_a_sweep_into_a_pipe(small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = use_console(monkeypatch, terminal=False)
    assert exit_status(SWEEP) == 0
    text = out.getvalue()
    assert "\x1b" not in text and "━" not in text
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= WIDTH for line in lines), max(lines, key=len)
    assert sum("epoch 1/2: loss" in line for line in lines) == 4
    assert sum("now the test split" in line for line in lines) == 4
    assert sum(line.strip().startswith("done in") for line in lines) == 4
    assert len({(row[1], row[2]) for row in table_rows(lines)}) == 4
    # accuracies in percent, as the report and the README give them (the runs store fractions)
    tests = [json.loads(m.read_text())["test"] for m in tmp_path.glob("out/runs/*/metrics.json")]
    done = {line.split(": ", 1)[1] for line in lines if line.strip().startswith("done in")}
    assert done == {
        f"test sum acc {100 * t['sum_acc']:.2f}%, joint acc {100 * t['joint_acc']:.2f}%"
        for t in tests
    }
    assert "test accuracy %" in " ".join(lines)
    sums = sorted(row[5] for row in table_rows(lines))  # #, lr, seed, params, digit, sum
    assert sums == sorted(f"{100 * t['sum_acc']:.2f}" for t in tests)
    assert "joint: both right; consis.: sum = digit + addend" in text  # the short headers said
    assert lines[-1] == "next: python -m benchmark report --results-dir out"  # what to do next


def test_a_finished_run_drops_its_checkpoint_unless_asked(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    use_console(monkeypatch, terminal=False)
    assert exit_status(["run", *TINY]) == 0
    assert exit_status(["run", *TINY, "--keep-checkpoint", "--seed", "1"]) == 0
    kept = {
        json.loads((d / rundir.CONFIG).read_text())["seed"]: (d / rundir.CHECKPOINT).exists()
        for d in (tmp_path / "out" / "runs").iterdir()
    }
    assert kept == {0: False, 1: True}
    for d in (tmp_path / "out" / "runs").iterdir():
        assert (d / rundir.MODEL).exists() and (d / rundir.METRICS).exists()


def test_an_interrupted_run_keeps_its_checkpoint_and_resumes(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint goes only once the run is complete: an interrupt leaves it to resume."""
    from benchmark import runs
    from benchmark.config import TrainConfig

    out = use_console(monkeypatch, terminal=False)
    cfg, ex = hardware.decide(
        TrainConfig(epochs=2, batch_size=64, eval_batch_size=100, train_subset=256,
                    precision="fp32", channels_last=False, threads=1)
    )  # fmt: skip
    run_dir = runs.start_run(cfg, tmp_path)

    def stop_after_the_first_epoch(event) -> None:
        if event.stats is not None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.execute(cfg, small_data, run_dir, ex, listen=stop_after_the_first_epoch)
    assert (run_dir / rundir.CHECKPOINT).exists()
    assert exit_status(["run", "--resume", str(run_dir)]) == 0
    assert rundir.read_status(run_dir)[0] == "complete"
    assert not (run_dir / rundir.CHECKPOINT).exists()
    assert len(rundir.read_history(run_dir)) == 2
    # a resumed run ends as a run does: its summary row, its directory, what to do next
    lines = out.getvalue().splitlines()
    assert "gap_cnn x concat, seed 0: test accuracy % (every image x all 10 addends)" in lines
    assert [row[0] for row in table_rows(lines)] == ["1"] and f"  1  {run_dir}" in lines
    assert lines[-1] == f"next: python -m benchmark report --results-dir {tmp_path}"


@pytest.fixture
def probe_spread(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[float]:
    """A fresh cache and a probe whose passes disagree as the list's last entry says."""
    spreads: list[float] = []
    monkeypatch.setenv("DIGITSUM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hardware, "_chosen", {})
    monkeypatch.setattr(
        hardware, "probe_cpu", lambda rounds=0: ({"fp32": 1000.0, "bf16": 1500.0}, spreads[-1])
    )
    return spreads


def test_a_busy_machines_probe_warns_and_is_not_cached(probe_spread: list[float], capsys) -> None:
    probe_spread.append(3.2)  # the slowest pass took 3.2x the fastest: other work took the cores
    record = hardware.cpu_choice()
    assert record["precision"] == "bf16" and record["spread"] == 3.2  # this process decides
    assert not hardware.cache_path().exists()
    said = capsys.readouterr().out
    assert said.startswith("warning: the CPU probe's repeated passes disagree") and "3.2x" in said
    assert len(said.strip().splitlines()) == 1
    hardware._chosen.clear()  # the next process measures again, on a quiet machine
    probe_spread.append(1.1)
    record = hardware.cpu_choice()
    assert json.loads(hardware.cache_path().read_text()) == {hardware.machine_key(): record}
    assert capsys.readouterr().out == ""


def test_a_probe_spread_once_is_measured_again_before_it_warns(
    probe_spread: list[float], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """One slow pass on a quiet machine: the second probe decides, is cached, and nothing is
    said; a machine busy through both probes warns (``test_a_busy_machines_probe_...``)."""
    spreads = iter([3.2, 1.2])
    monkeypatch.setattr(
        hardware, "probe_cpu", lambda rounds=0: ({"fp32": 1000.0, "bf16": 1500.0}, next(spreads))
    )
    record = hardware.cpu_choice()
    assert record["spread"] == 1.2 and hardware.cache_path().is_file()
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("width", [80, 120])
def test_a_study_progress_line_fits_the_terminal(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tune``'s and ``compare``'s study bar: label, bar, count and best on one line within the
    terminal's width, 80 columns included."""
    import optuna
    from rich.console import Console

    from benchmark import progress

    screen = Console(width=width, force_terminal=True, record=True, color_system=None)
    monkeypatch.setattr(progress, "console", screen)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    for value in (0.9876, 0.5):
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=value))
    bar = progress.study_bar()
    progress.StudyProgress(bar, study, "tiny_resnet x embed_add", 20)
    screen.export_text(clear=True)
    screen.print(bar.make_tasks_table(bar.tasks))
    line = screen.export_text().rstrip("\n")
    assert "\n" not in line and len(line) <= width
    assert (
        "tiny_resnet x embed_add" in line
        and "2/20" in line
        and "best joint 98.76% (trial 0)" in line
    )
    assert "╸" in line  # the bar itself (a tenth of 8 columns) survives at 80 columns
    assert "--:-- left" in line  # the time says what it is: left, or once done, taken


def test_a_finished_study_says_how_long_it_took_and_a_narrow_terminal_cuts_the_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The column showed time left, then at 20/20 the time taken, alike ("00:30", "01:04"); at
    80 columns the table squeezed a finished study's time to "00…" and wrapped the line."""
    from rich.console import Console

    from benchmark import progress

    screen = Console(width=60, force_terminal=True, record=True, color_system=None)
    monkeypatch.setattr(progress, "console", screen)
    bar = progress.study_bar()
    stats = "best joint 99.12% (trial 13), 12 pruned, 1 failed"
    task = bar.add_task("tiny_resnet x embed_add", total=20, stats=stats, earlier=False)
    bar.update(task, completed=20)
    screen.print(bar.make_tasks_table(bar.tasks))
    line = screen.export_text().rstrip("\n")
    assert "\n" not in line and "20/20 took 00:00 best join" in line and line.endswith("…")


@pytest.mark.parametrize("terminal", [True, False])
def test_a_trials_line_folds_between_settings_in_a_terminal_and_is_whole_in_a_log(
    terminal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished trial's line with its parameters ran to 200-270 characters, which an
    80-column terminal broke mid-setting; a log keeps it one line, to grep."""
    import io

    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial
    from rich.console import Console

    from benchmark import progress

    out = io.StringIO()
    screen = Console(file=out, width=WIDTH, force_terminal=terminal, color_system=None)
    monkeypatch.setattr(progress, "console", screen)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    bar = progress.study_bar()
    shown = progress.StudyProgress(bar, study, "gap_cnn x late_sum", 20)
    names = ["lr", "weight_decay", "warmup", "label_smoothing", "sum_loss_weight", "aug_shift"]
    params = {name: 0.123456 for name in [*names, "aug_degrees", "dropout"]}
    space = {name: FloatDistribution(0.0, 1.0) for name in params}
    study.add_trial(create_trial(params=params, distributions=space, value=0.9))
    out.truncate(0)
    shown.refresh()
    lines = [line for line in out.getvalue().splitlines() if "=" in line]
    settings = [word for line in lines for word in line.split() if "=" in word]
    assert len(settings) == len(params)  # each setting whole, on one line
    if terminal:
        assert len(lines) > 1 and all(len(line) <= WIDTH for line in lines)
        assert all(line.startswith("      ") for line in lines[1:])  # folded, indented
    else:
        assert len(lines) == 1 and len(lines[0]) > WIDTH


def test_a_study_progress_line_into_a_log_is_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Into a file rich cut the line at 80 columns, through the counts ("20/…", "1 fail 00:…");
    there the line is printed whole, and a failed trial is called failed."""
    import io

    import optuna
    from optuna.trial import TrialState, create_trial
    from rich.console import Console

    from benchmark import progress

    log = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=log, width=80, highlight=False))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(params={}, distributions={}, value=0.9932))
    for state in (TrialState.PRUNED, TrialState.FAIL):
        study.add_trial(create_trial(state=state, intermediate_values={1: 0.5}))
    bar = progress.study_bar()
    progress.StudyProgress(bar, study, "small_cnn x embed_add", 20)
    bar.console.print(bar.make_tasks_table(bar.tasks))
    (line,) = log.getvalue().strip().splitlines()
    assert "small_cnn x embed_add" in line and "2/20" in line  # a failed trial is not counted
    assert "best joint 99.32% (trial 0), 1 pruned, 1 failed" in line and "…" not in line


def test_a_trial_rejected_before_training_is_not_called_pruned() -> None:
    """Optuna stores a suggestion over the cap as pruned; its line says rejected, as the docs
    and the report do, and a trial the pruner stopped stays pruned, with its last epoch."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from benchmark import progress
    from benchmark.progress import describe_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    over = create_trial(state=TrialState.PRUNED, user_attrs={"over_cap": 10, "params": 5000})
    stopped = create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.5})
    assert "rejected: 5,000 parameters, over the cap (not counted)" in describe_trial(over)
    assert "pruned: val joint acc 50.00% at epoch 1" in describe_trial(stopped)
    study = optuna.create_study(direction="maximize")
    for trial in (over, stopped):
        study.add_trial(trial)
    bar = progress.study_bar()
    progress.StudyProgress(bar, study, "gap_cnn x concat", 20)
    # the rejected one is not counted, but is said: it took a trial number
    assert bar.tasks[0].fields["stats"] == "best -, 1 pruned, 1 rejected"


@pytest.mark.parametrize("total", [2, 20])
def test_a_study_done_before_this_process_says_so_not_00_00(
    total: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay (compare on finished studies) showed 00:00 beside each, hours of tuning among
    them, as if they took no time; and "(trial 22)" of 20/20 with no word on rejected trials."""
    import io

    import optuna
    from optuna.trial import TrialState, create_trial
    from rich.console import Console

    from benchmark import progress

    log = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=log, width=80, highlight=False))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"over_cap": 10}))
    for value in (0.5, 0.99):
        study.add_trial(create_trial(params={}, distributions={}, value=value))
    bar = progress.study_bar()
    progress.StudyProgress(bar, study, "gap_cnn x concat", total)
    bar.console.print(bar.make_tasks_table(bar.tasks))
    (line,) = log.getvalue().strip().splitlines()
    assert f" 2/{total} " in line and "best joint 99.00% (trial 2), 1 rejected" in line
    assert line.endswith(", done earlier") is (total == 2)
    assert ("00:00" in line) is False and ("--:-- left" in line) is (total == 20)


def test_a_study_bar_says_while_it_waits_for_trials_elsewhere() -> None:
    """A worker whose study's last trials run on other workers says how many, until the next
    refresh, rather than sit on a bar that does not move."""
    import optuna

    from benchmark import progress

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    bar = progress.study_bar()
    tracker = progress.StudyProgress(bar, study, "gap_cnn x concat", 20)
    (task,) = bar.tasks
    tracker.waiting(3)
    assert "waiting for 3 running elsewhere" in task.fields["stats"]
    tracker.refresh()
    assert "waiting" not in task.fields["stats"]


def test_an_estimate_reads_only_earlier_runs_of_the_same_model_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Earlier runs' training rate estimates a new run only when its model arguments, its CPU
    (features included: VMs name CPUs with and without AVX-512 alike), its memory layout and
    compile match: a run four times as wide is not timed by the default width's runs, nor a
    channels_last run by contiguous ones, nor a compiled run by eager ones; and a run too short
    to have a rate (a 2,048-image smoke run timed the next default run at 14 min for 4) times
    none."""
    import torch
    from conftest import DEVICE, make_run

    from benchmark.config import TrainConfig
    from benchmark.estimate import earlier_rates, training_rate
    from benchmark.hardware import Execution

    def earlier_run(seed: int, **changes: object) -> None:
        run_dir = make_run(tmp_path / "runs", f"r{seed}", seed=seed)  # 1000 * (seed + 1) img/s
        found = json.loads((run_dir / "metrics.json").read_text())
        found["config"] |= {"batch_size": 128, "precision": "fp32"}
        found |= {"cpu_features": "avx2", "channels_last": False}
        if "width" in changes:
            found["config"]["model_args"] = {"width": changes.pop("width")}
        (run_dir / "metrics.json").write_text(json.dumps(found | changes))

    earlier_run(0)
    earlier_run(1, width=64)
    earlier_run(2, cpu_features="avx512 bf16")  # another CPU of the same name
    earlier_run(3, channels_last=True)
    earlier_run(4, compile_seconds=30.0)  # compiled: 5,000 img/s after 30 s of compiling
    earlier_run(5, train_seconds=3.0)  # a smoke run of 18,000 images: its warm-up, not a rate
    found = json.loads((tmp_path / "runs" / "r4" / "metrics.json").read_text())
    found["config"]["compile"] = True
    (tmp_path / "runs" / "r4" / "metrics.json").write_text(json.dumps(found))
    earlier = earlier_rates(tmp_path)
    monkeypatch.setattr(hardware, "device_name", lambda device: DEVICE)  # where they ran
    monkeypatch.setattr(hardware, "cpu_features", lambda: "avx2")
    ex = Execution(device=torch.device("cpu"))
    default = training_rate(TrainConfig(batch_size=128), ex, earlier)
    wide = training_rate(TrainConfig(batch_size=128, model_args={"width": 64}), ex, earlier)
    basis = "earlier runs in this results directory"
    assert default == (1000.0, basis, 0.0)
    assert wide == (2000.0, basis, 0.0)
    layout = Execution(device=torch.device("cpu"), channels_last=True)
    assert training_rate(TrainConfig(batch_size=128), layout, earlier) == (4000.0, basis, 0.0)
    # a compiled run is timed by compiled ones only, and pays their compiling again
    compiled = Execution(device=torch.device("cpu"), compile=True)
    assert training_rate(TrainConfig(batch_size=128), compiled, earlier) == (5000.0, basis, 30.0)


def test_an_estimate_counts_every_validation_the_test_and_whole_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 1,000 images/s: 2 epochs of 10 whole steps of 100 (the ragged 50 dropped), then a
    validation after each epoch and a last one, and the test, each image a third of a step's."""
    from benchmark import estimate
    from benchmark.config import TrainConfig

    monkeypatch.setattr(estimate, "earlier_rates", lambda results_dir: {})
    monkeypatch.setattr(estimate, "training_rate", lambda cfg, ex, earlier: (1000.0, "x", 0.0))
    cfg = TrainConfig(epochs=2, batch_size=100)
    found = estimate.estimate([(cfg, None, (1050, 500, 200))], Path("/nonexistent"))
    assert found == (pytest.approx((2000 + (500 * 3 + 200) / 3) / 1000), "x")
    monkeypatch.setattr(estimate, "training_rate", lambda cfg, ex, earlier: (1000.0, "x", 30.0))
    compiled = estimate.estimate([(cfg, None, (1050, 500, 200))], Path("/nonexistent"))
    assert compiled[0] == pytest.approx(found[0] + 30.0)  # the seconds compiling, added


def test_a_compiled_runs_estimate_from_the_probe_says_compiling_is_not_counted() -> None:
    """The probe trains eager: its figure times a compiled run only in part, and says so."""
    import torch

    from benchmark.bench import model_cost
    from benchmark.config import TrainConfig
    from benchmark.estimate import training_rate
    from benchmark.hardware import Execution, machine_key

    probe = {"precision": "fp32", "channels_last": False, "images_per_s": {"fp32": 1000.0}}
    probe |= {"machine": machine_key(), "probed": "2026-12-05 09:00:00", "spread": 1.0}
    for compile, note in [(False, ""), (True, " (eager; compiling not counted)")]:
        ex = Execution(device=torch.device("cpu"), compile=compile, probe=probe)
        rate, basis, compiling = training_rate(TrainConfig(), ex, {})
        assert rate == 1000.0 and compiling == 0.0  # the default model is the probe's
        assert basis == "the CPU probe's figure scaled by MACs" + note
    # about 4x the MACs: slower, by as much for all but the share MACs do not scale; 6x fewer:
    # faster, by 3.4x rather than 6x (measured 2.5-4.5x), so that no MAC count is free
    wide, small = TrainConfig(model_args={"width": 32}), TrainConfig(arch="small_cnn")
    ex = Execution(device=torch.device("cpu"), probe=probe)
    for cfg in (wide, small):
        rate = training_rate(cfg, ex, {})[0]
        ratio = (
            model_cost(cfg.arch, cfg.fusion, cfg.model_args)[1]
            / model_cost("gap_cnn", "concat", {})[1]
        )
        assert ratio > 3 or ratio < 1 / 5
        assert rate == pytest.approx(1000.0 / (0.15 + 0.85 * ratio))


def test_the_probe_estimates_only_its_own_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU probe's figure says nothing of a GPU, nor of another CPU whose probe a config
    carries (``auto_probe``, written on another machine): no estimate, not a wrong one."""
    from benchmark.config import TrainConfig
    from benchmark.estimate import training_rate
    from benchmark.hardware import Execution, machine_key

    monkeypatch.setenv("DIGITSUM_CACHE", str(tmp_path))  # no probe cached here
    probe = {"precision": "fp32", "channels_last": False, "images_per_s": {"fp32": 1000.0}}
    probe |= {"machine": machine_key(), "probed": "2026-12-05 09:00:00", "spread": 1.0}
    here = Execution(device=torch.device("cpu"), probe=probe)
    assert training_rate(TrainConfig(), here, {})[0] == 1000.0
    foreign = {**probe, "machine": "Another CPU | 2.14 | bf16"}
    assert training_rate(TrainConfig(), replace(here, probe=foreign), {}) is None
    monkeypatch.setattr(hardware, "machine_name", lambda device: "cuda: NVIDIA H100")
    gpu = replace(here, device=torch.device("cuda"))
    assert training_rate(TrainConfig(), gpu, {}) is None


@pytest.mark.parametrize("seconds", [2.0, 600.0])
def test_a_short_estimate_says_start_up_is_not_in_it(
    seconds: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A smoke run was estimated at 2 s and took several times that: its start-up and warm-up,
    which no estimate holds, are most of a short run's time, so a short estimate says so."""
    from types import SimpleNamespace

    import torch

    from benchmark.commands import run
    from benchmark.config import TrainConfig
    from benchmark.hardware import Execution

    monkeypatch.setattr(run, "estimate", lambda work, results_dir: (seconds, "the CPU probe"))
    data = SimpleNamespace(train=[0] * 2048, val=[0] * 10, test=[0] * 10)
    work = [(TrainConfig(), Execution(device=torch.device("cpu")), data)]
    assert run.announce(work, {}, tmp_path) == seconds
    out = " ".join(capsys.readouterr().out.split())  # (wrapped at 80 columns)
    said = "evaluation (start-up and warm-up not counted), estimated from the CPU probe" in out
    assert said is (seconds < run.SHORT) and "estimated from the CPU probe" in out


def test_a_grid_whose_model_argument_sweep_some_models_do_not_take_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """--model-arg width=8,16 over gap_cnn and a timm ViT: 3 runs, not the 4 that "2 encoders x
    2 width values" multiplies to, and the grid line says why."""
    from types import SimpleNamespace

    from benchmark.commands import run
    from benchmark.config import TrainConfig
    from benchmark.hardware import Execution

    monkeypatch.setattr(run, "estimate", lambda work, results_dir: None)
    data = SimpleNamespace(train=[0] * 2048, val=[0] * 10, test=[0] * 10)
    configs = [
        TrainConfig(model_args={"width": 8}),
        TrainConfig(model_args={"width": 16}),
        TrainConfig(arch="timm:test_vit", model_args={"img_size": 28, "patch_size": 7}),
    ]
    work = [(cfg, Execution(device=torch.device("cpu")), data) for cfg in configs]
    run.announce(work, {}, tmp_path, {"width": [8, 16]})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "grid: 3 runs (2 encoders x 2 width values, each model argument where taken)"
    run.announce(work[:2], {}, tmp_path, {"width": [8, 16]})  # every run takes it: no words
    assert capsys.readouterr().out.splitlines()[0] == "grid: 2 runs (2 width values)"


def summary_rows() -> list[dict]:
    """Two finished runs differing in arch, fusion, lr and seed, as ``print_summary`` takes them."""
    from benchmark import metrics

    grid = [("gap_cnn", "concat", 0.001, 0), ("small_cnn", "late_sum", 0.003, 1)]
    return [
        {"arch": arch, "fusion": fusion, "seed": seed, "config": {"lr": lr}, "params": 123456,
         "test": dict.fromkeys(metrics.names(), 0.5), "train_seconds": 1.0,
         "train_images_per_s": 100.0}
        for arch, fusion, lr, seed in grid
    ]  # fmt: skip


def test_a_summary_too_wide_for_the_screen_joins_what_tells_its_runs_apart_in_one_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four differing fields and the numbers are wider than 80 columns: the fields share one
    "run" column (it wraps) and the numbers stay whole; one field keeps a column of its own."""
    from benchmark.commands import run

    out = use_console(monkeypatch, terminal=False)
    fields = ("arch", "fusion", "lr", "seed")
    run.print_summary(summary_rows(), [], fields)
    lines = out.getvalue().splitlines()
    header = next(line for line in lines if line.lstrip().startswith("#"))
    assert header.split()[:3] == ["#", "run", "params"]
    assert [row[1:5] for row in table_rows(lines)] == [
        ["gap_cnn", "concat", "lr=0.001", "seed=0"],
        ["small_cnn", "late_sum", "lr=0.003", "seed=1"],
    ]
    out = use_console(monkeypatch, terminal=False)
    run.print_summary(summary_rows(), [], ("seed",))
    header = next(line for line in out.getvalue().splitlines() if line.lstrip().startswith("#"))
    assert header.split()[:3] == ["#", "seed", "params"]


def test_a_finished_trial_is_one_line_in_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Written to a pipe 80 columns wide, a trial's parameters ran on over lines that began at
    the margin; a log keeps one line a trial (to grep), its values as given, brackets too."""
    import io

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from rich.console import Console

    from benchmark import progress

    log = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=log, width=80, color_system=None))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    params = {f"knob_{i}": 0.123456 * i for i in range(1, 12)} | {"block": "[a]"}
    spaces = {k: FloatDistribution(0, 2) for k in params if k != "block"}
    spaces["block"] = CategoricalDistribution(["[a]", "b"])
    study = optuna.create_study(direction="maximize")
    shown = progress.StudyProgress(progress.study_bar(), study, "gap_cnn x concat", 20)
    study.add_trial(optuna.trial.create_trial(params=params, distributions=spaces, value=0.5))
    shown.refresh()  # a trial finished since: its line
    (line,) = [s for s in log.getvalue().splitlines() if "knob" in s]
    assert len(line) > 80  # the combination named: a log shows the study's bar after its trials
    assert line.startswith("  gap_cnn x concat trial 0 complete: val joint acc 50.00%")
    assert "knob_11=1.358" in line and "block=[a]" in line


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0.2, "<1 s"),
        (0.9, "<1 s"),
        (1.4, "1 s"),
        (89, "89 s"),  # "1 min" would round a third away
        (90, "2 min"),
        (420, "7 min"),
        (5399, "90 min"),
        (5400, "1 h 30 min"),
        (7500, "2 h 05 min"),
    ],
)
def test_a_duration_reads_as_a_person_says_it(seconds: float, said: str) -> None:
    from benchmark.wording import duration

    assert duration(seconds) == said


def summary_of(overrides: list[dict[str, int]], joined: bool = False) -> list[str]:
    """The end-of-grid table of gap_cnn and small_cnn x concat runs taking ``overrides``."""
    from benchmark import metrics
    from benchmark.commands.run import summary_table

    rows = [
        {
            "arch": arch,
            "fusion": "concat",
            "seed": 0,
            "config": {"model_args": args},
            "params": 1000,
            "test": dict.fromkeys(metrics.names(), 0.5),
            "train_seconds": 1.0,
            "train_images_per_s": 100.0,
        }
        for arch, args in zip(["gap_cnn", "small_cnn"], overrides, strict=True)
    ]
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(summary_table(rows, ("arch",), joined))
    return out.getvalue().splitlines()


def test_the_run_summarys_title_is_whole_on_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the table's title it wrapped at the table's width, mid-phrase: "(every" / "image x
    all 10 addends)"."""
    from benchmark import metrics, progress
    from benchmark.commands import common, run

    out = io.StringIO()
    screen = Console(file=out, width=80, color_system=None)
    for module in (progress, run, common):
        monkeypatch.setattr(module, "console", screen)
    rows = [
        {"arch": "gap_cnn", "fusion": "concat", "seed": 0, "config": {}, "params": 1000,
         "test": dict.fromkeys(metrics.names(), 0.5), "train_seconds": 1.0,
         "train_images_per_s": 100.0}
    ]  # fmt: skip
    run.print_summary(rows, [], ())
    lines = out.getvalue().splitlines()
    title = "gap_cnn x concat, seed 0: test accuracy % (every image x all 10 addends)"
    assert lines[0] == title and sum(title in line for line in lines) == 1


def test_the_grid_summary_names_the_model_arguments_its_runs_took() -> None:
    """One --model-arg every run took: in the title; taken by some runs only (a grid gives it to
    the combinations that take it): a column, ``defaults`` where a run took none."""
    lines = summary_of([{"width": 8}, {"width": 8}])
    assert lines[0].strip().startswith("concat, width=8, seed 0: test accuracy")
    assert "model args" not in " ".join(lines)
    lines = summary_of([{"width": 8}, {}])
    assert lines[0].strip().startswith("concat, seed 0: test accuracy")
    header = next(line for line in lines if line.lstrip().startswith("#"))
    assert header.split()[:4] == ["#", "arch", "model", "args"]
    rows = {line.split()[1]: line.split()[2] for line in lines if re.match(r" *\d ", line)}
    assert rows == {"gap_cnn": "width=8", "small_cnn": "defaults"}
    joined = " ".join(summary_of([{"width": 8}, {}], joined=True))  # one column: narrow terminals
    assert "gap_cnn width=8" in joined and "defaults" not in joined and "small_cnn" in joined


def test_a_model_argument_sweep_names_each_run_by_its_value(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = use_console(monkeypatch, terminal=False)
    swept = [*TINY[:-2], "--model-arg", "width=4,6"]  # (TINY's width=4 given once, not twice)
    assert exit_status(["run", *swept, "--epochs", "1"]) == 0
    lines = out.getvalue().splitlines()
    assert "grid: 2 runs (2 width values)" in lines
    assert "[1/2] gap_cnn x concat, width=4, seed 0" in lines
    assert "[2/2] gap_cnn x concat, width=6, seed 0" in lines
    rows = {row[1]: row[2] for row in table_rows(lines)}  # #, model args, params
    assert set(rows) == {"width=4", "width=6"} and rows["width=4"] != rows["width=6"]


def test_a_run_typed_twice_is_noted_before_it_trains(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same configuration and seed again: one note before training names the run it
    repeats (the report counts a seed once); another seed is no repeat."""
    monkeypatch.chdir(tmp_path)
    argv = ["run", *TINY, "--epochs", "1", "--seeds", "0,1"]
    out = use_console(monkeypatch, terminal=False)
    assert exit_status(argv) == 0
    assert "note:" not in out.getvalue()
    first = {
        json.loads(m.read_text())["seed"]: m.parent.name
        for m in tmp_path.glob("out/runs/*/metrics.json")
    }
    out = use_console(monkeypatch, terminal=False)
    assert exit_status([*argv[:-1], "0,2"]) == 0
    (note,) = [line for line in out.getvalue().split("\n[1/2]")[0].split("\n") if "note" in line]
    assert note == (
        "note: 1 of these runs repeats a configuration and seed already complete in out/runs "
        f"(the report counts a seed once): [1/2] gap_cnn x concat, seed 0 (as {first[0]})"
    )
    out = use_console(monkeypatch, terminal=False)
    assert exit_status(["run", *TINY, "--epochs", "1", "--seed", "1"]) == 0
    assert (
        f"note: this run repeats a configuration and seed already complete in out/runs (the "
        f"report counts a seed once): gap_cnn x concat, seed 1 (as {first[1]})\n" in out.getvalue()
    )


def test_a_run_that_only_guessed_is_said_to_have_learned_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--epochs 1 --train-subset 2048`` finished "successfully" at 11.35% digit accuracy, a
    model predicting one class, and nothing said so: the summary now names such runs."""
    from benchmark import metrics
    from benchmark.commands import run

    monkeypatch.setenv("COLUMNS", "200")
    rows = [
        {
            "arch": "gap_cnn",
            "fusion": "concat",
            "seed": seed,
            "config": {},
            "params": 1000,
            "test": dict.fromkeys(metrics.names(), accuracy),
            "train_seconds": 1.0,
            "train_images_per_s": 100.0,
        }
        for seed, accuracy in enumerate([0.99, 0.1135, 0.95, 0.12])
    ]
    dirs = [tmp_path / "runs" / f"r{i}" for i in range(4)]
    run.print_summary(rows, dirs, ("seed",))
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "runs 2, 4: digit accuracy under 20%, near chance (10%), so they learned nothing; give"
        in out
    )
    run.print_summary(rows[:1], dirs[:1], ())
    assert "learned nothing" not in capsys.readouterr().out


def test_the_time_left_counts_down_between_the_counts_of_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Steps are counted every 25: in a small run they stood still for seconds while the time
    since the start grew, and "9 s left" climbed to "15 s left"."""
    now = [100.0]
    monkeypatch.setattr("benchmark.progress.time.monotonic", lambda: now[0])
    shown = RunsProgress(runs=1, steps=100, estimate=3.0)
    now[0] = 109.0  # starting: the estimate leaves start-up out, so it holds ("<1 s left" was)
    assert shown.time_left() == 3.0
    now[0], shown.current, shown.counted = 110.0, 25, 110.0  # 25 steps in 10 s: 30 s to go
    assert shown.time_left() == 30.0
    now[0] = 115.0  # no step counted since
    assert shown.time_left() == 25.0
    now[0] = 200.0  # slower than the pace so far: none left by it, not a negative time
    assert shown.time_left() == 0.0


def bar_spans(shown: RunsProgress) -> tuple[int, int]:
    """(filled, whole) columns of the live line's bar at 80 columns."""
    console = Console(width=WIDTH, color_system=None)
    (line,) = shown.__rich_console__(console, console.options)
    styled = [(str(span.style), span.end - span.start) for span in line.spans]
    filled = sum(size for style, size in styled if style == "bold magenta")
    return filled, filled + sum(size for style, size in styled if style == "grey30")


def test_the_bar_of_a_sequence_counts_the_runs_already_done() -> None:
    """Half the steps trained by finished runs and none yet by the current one: half a bar,
    not an empty one that starts again at every run."""
    shown = RunsProgress(runs=2, steps=100)
    shown.done, shown.trained, shown.current = 1, 50, 0
    filled, whole = bar_spans(shown)
    assert whole >= 10 and filled == round(whole / 2)


def test_a_single_runs_live_line_has_no_runs_done_count() -> None:
    shown = RunsProgress(runs=1, steps=100)
    shown.label = "gap_cnn x concat, seed 0"
    out = io.StringIO()
    Console(file=out, width=WIDTH, color_system=None).print(shown)
    assert "done" not in out.getvalue() and "gap_cnn x concat" in out.getvalue()


@pytest.mark.parametrize("loss", [" loss 0.4132", " validating"])
def test_a_sequences_live_line_at_80_columns_shows_the_runs_seed(loss: str) -> None:
    """The seed is what tells ``--seeds 0,1``'s runs apart: the bar gives up columns for it (a
    bar of 17 had cut the label to "gap_cnn x concat, see…"), down to a bar of 10."""
    shown = RunsProgress(runs=2, steps=100, estimate=4000)
    shown.epoch, shown.loss, shown.label = "epoch 1/4", loss, "gap_cnn x concat, seed 0"
    out = io.StringIO()
    Console(file=out, width=WIDTH, color_system=None).print(shown)
    (line,) = out.getvalue().splitlines()
    assert line.endswith("  gap_cnn x concat, seed 0") and " 67 min left" in line
    assert "━" * 10 in line and len(line) <= WIDTH


def play(monkeypatch: pytest.MonkeyPatch, steps: list[int], epochs: int, per_epoch: int) -> None:
    """``runs.execute`` replaced by one that reports ``steps`` (each epoch's last one twice, the
    second time with its validation), 10 s apart."""
    from types import SimpleNamespace

    from benchmark import runs
    from benchmark.trainer import Progress

    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr("benchmark.progress.time.monotonic", lambda: next(clock))
    stats = SimpleNamespace(val_sum_acc=0.5, seconds=1.0)

    def execute(cfg, data, run_dir, ex, state=None, listen=None):
        for step in steps:
            epoch = (step - 1) // per_epoch + 1
            listen(Progress(step, epochs * per_epoch, epoch, 0.5, 0.5))
            if step % per_epoch == 0:
                listen(Progress(step, epochs * per_epoch, epoch, 0.5, 0.5, stats))
        return {"test": {"sum_acc": 0.5, "joint_acc": 0.5}}

    monkeypatch.setattr(runs, "execute", execute)


def test_a_pipe_says_the_test_split_comes_after_the_last_epoch_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    out = use_console(monkeypatch, terminal=False)
    play(monkeypatch, [1, 2, 3, 4, 5, 6], epochs=3, per_epoch=2)
    with RunsProgress(runs=1, steps=6) as shown:
        shown.train(SimpleNamespace(epochs=3), None, tmp_path, None, "gap_cnn x concat, seed 0")
    epochs = [line.strip() for line in out.getvalue().splitlines() if ": loss" in line]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert [line.endswith("; now the test split") for line in epochs] == [False, False, True]


def test_the_time_left_after_a_run_counts_the_steps_of_the_runs_done(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """After the first of two runs of 4 steps the pace is known: the second run starts with a
    time left from it, not with no time at all (the steps of the runs done forgotten)."""
    from types import SimpleNamespace

    use_console(monkeypatch, terminal=False)
    play(monkeypatch, [1, 2, 3, 4], epochs=1, per_epoch=4)
    with RunsProgress(runs=2, steps=8) as shown:
        shown.train(SimpleNamespace(epochs=1), None, tmp_path, None, "gap_cnn x concat, seed 0")
        assert shown.trained == 4 and shown.current == 0
        assert shown.time_left() is not None and shown.time_left() > 0


def test_a_resumed_run_counts_only_the_steps_it_trains_and_ends_on_a_full_bar(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run resumed at step 4 of 8: 4 steps to train, and the bar full after them (counted
    from step 0 it ran over, and the time left was paced on steps trained before)."""
    from types import SimpleNamespace

    from benchmark import progress
    from benchmark.config import TrainConfig

    made: list[RunsProgress] = []

    class Recorded(RunsProgress):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(progress, "RunsProgress", Recorded)
    use_console(monkeypatch, terminal=False)
    play(monkeypatch, [5, 6, 7, 8], epochs=2, per_epoch=4)
    cfg = TrainConfig(epochs=2, batch_size=64)
    data = SimpleNamespace(train=[0] * 256)  # 4 steps an epoch
    progress.train_with_progress(cfg, data, tmp_path, None, state=SimpleNamespace(step=4))
    (shown,) = made
    assert shown.steps == 4 and shown.trained == 4
    filled, whole = bar_spans(shown)
    assert filled == whole


def test_a_pruned_trial_says_its_last_epoch() -> None:
    import optuna
    from optuna.trial import TrialState, create_trial

    from benchmark.progress import describe_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    stopped = create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.3, 3: 0.6, 2: 0.5})
    assert "pruned: val joint acc 60.00% at epoch 3" in describe_trial(stopped)


@pytest.mark.parametrize("terminal", [True, False])
def test_any_printed_line_wraps_in_a_terminal_and_is_whole_without_trailing_spaces_in_a_pipe(
    terminal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipe had run's "auto on this cpu: ..." cut at 80 columns with a space left at the end
    of each piece, beside tables printed at their natural width."""
    from benchmark import progress

    out = io.StringIO()
    screen = progress.LineConsole(file=out, width=40, force_terminal=terminal, color_system=None)
    monkeypatch.setattr(progress, "console", screen)
    text = "auto on this cpu: bf16, channels_last (probed 2026-12-07 21:33:18; training"
    progress.say(text)
    screen.print(text, markup=False)
    lines = out.getvalue().splitlines()
    if terminal:
        assert len(lines) > 2 and all(len(line) <= 40 for line in lines)
    else:
        assert lines == [text, text]  # whole, and no space left at the end of a piece


@pytest.mark.parametrize("terminal", [True, False])
def test_a_line_of_words_wraps_at_spaces_in_a_terminal_and_stays_one_line_in_a_log(
    terminal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmark import progress

    out = io.StringIO()
    screen = Console(file=out, width=40, force_terminal=terminal, color_system=None)
    monkeypatch.setattr(progress, "console", screen)
    text = "study gap_cnn-concat in out/studies/gap_cnn-concat.db " * 3
    progress.say_whole(text.strip())
    lines = out.getvalue().splitlines()
    assert (len(lines) > 1) is terminal
    if terminal:
        assert all(len(line) <= 40 for line in lines)  # folded at spaces, no word cut
        assert " ".join(lines).split() == text.split()


def test_a_probe_of_this_cpu_under_another_torch_release_is_this_machines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmark.progress import probed_here

    here = "cpu: AMD EPYC (2 threads) | torch 2.5.0 | native bf16"
    monkeypatch.setattr(hardware, "machine_key", lambda: here)
    assert probed_here({"machine": here.replace("2.5.0", "2.4.1")})
    assert not probed_here({"machine": here.replace("AMD EPYC", "Intel Xeon")})
    assert not probed_here({})


def test_an_estimate_is_none_if_any_run_has_no_rate_and_names_every_basis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A grid whose runs rest on different figures says all of them; one run without a figure
    leaves the whole grid unestimated rather than estimated short."""
    from benchmark import estimate
    from benchmark.config import TrainConfig

    rates = {1: (1000.0, "the probe", 0.0), 2: (1000.0, "earlier runs", 0.0), 3: None}
    monkeypatch.setattr(estimate, "earlier_rates", lambda results_dir: {})
    monkeypatch.setattr(estimate, "training_rate", lambda cfg, ex, earlier: rates[cfg.seed])
    work = [(TrainConfig(seed=seed), None, (1000, 0, 0)) for seed in (1, 2)]
    found = estimate.estimate(work, Path("/nonexistent"))
    assert found is not None and found[1] == "earlier runs and the probe"
    unknown = (TrainConfig(seed=3), None, (1000, 0, 0))
    assert estimate.estimate([*work, unknown], Path("/nonexistent")) is None


def test_model_arguments_key_earlier_rates_alike_in_any_order_and_none_as_empty() -> None:
    from benchmark.estimate import rate_key

    way = ("gap_cnn", "concat", "cpu: x", "fp32", False)
    in_order = rate_key(way, False, 128, {"a": 1, "b": 2})
    assert in_order == rate_key(way, False, 128, {"b": 2, "a": 1})
    assert rate_key(way, False, 128, None) == rate_key(way, False, 128, {})


def test_earlier_runs_time_a_run_by_their_median_rate_and_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three earlier runs at 9,000, 2,000 and 1,000 images/s, compiling 90, 20 and 10 s: the
    median of each (one outlier moves neither), not the first run's nor the last's."""
    from conftest import DEVICE, make_run

    from benchmark.config import TrainConfig
    from benchmark.estimate import earlier_rates, training_rate
    from benchmark.hardware import Execution

    for name, rate, compiling in [("a", 9000.0, 90.0), ("b", 2000.0, 20.0), ("c", 1000.0, 10.0)]:
        run_dir = make_run(tmp_path / "runs", name)
        found = json.loads((run_dir / "metrics.json").read_text())
        found["config"] |= {"batch_size": 128, "precision": "fp32", "compile": True}
        found |= {"train_images_per_s": rate, "compile_seconds": compiling, "channels_last": False}
        (run_dir / "metrics.json").write_text(json.dumps(found | {"cpu_features": "avx2"}))
    monkeypatch.setattr(hardware, "device_name", lambda device: DEVICE)
    monkeypatch.setattr(hardware, "cpu_features", lambda: "avx2")
    ex = Execution(device=torch.device("cpu"), compile=True)
    rate, _, compiling = training_rate(TrainConfig(batch_size=128), ex, earlier_rates(tmp_path))
    assert (rate, compiling) == (2000.0, 20.0)


def test_the_probe_times_a_run_by_its_own_layouts_figure_from_the_cache_when_none_is_carried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose precision and layout were both set carries no probe: the cached one times it,
    by the figure of its layout; a layout the probe did not measure has no estimate."""
    from benchmark.config import TrainConfig
    from benchmark.estimate import training_rate
    from benchmark.hardware import Execution

    monkeypatch.setenv("DIGITSUM_CACHE", str(tmp_path))
    key = hardware.machine_key()
    figures = {"fp32": 1000.0, "fp32+channels_last": 1500.0}
    hardware.write_cache(hardware.cache_path(), {key: hardware.probe_record(figures, 1.0, key)})
    contiguous = Execution(device=torch.device("cpu"))
    assert training_rate(TrainConfig(), contiguous, {})[0] == 1000.0
    layout = replace(contiguous, channels_last=True)
    assert training_rate(TrainConfig(), layout, {})[0] == 1500.0
    assert training_rate(TrainConfig(), replace(contiguous, precision="bf16"), {}) is None


def test_an_earlier_run_without_its_training_seconds_times_nothing(tmp_path: Path) -> None:
    """A finished run whose metrics lack ``train_seconds`` (hand-edited, or older) is left out
    of the rates, not a TypeError in every later ``run``'s estimate."""
    from conftest import make_run

    from benchmark.estimate import earlier_rates

    run_dir = make_run(tmp_path / "runs", "r0")
    found = json.loads((run_dir / "metrics.json").read_text())
    del found["train_seconds"]
    (run_dir / "metrics.json").write_text(json.dumps(found))
    assert earlier_rates(tmp_path) == {}
