"""What a person watches while work runs: the console, progress bars, a study's progress and a
training run's progress. Shared by the commands (which never import one another); light at
import, so that ``--help`` stays fast."""

from __future__ import annotations

import textwrap
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from benchmark.config import TrainConfig
from benchmark.errors import UsageError
from benchmark.trials import rejected
from benchmark.wording import duration, percent, settings


class LineConsole(Console):
    """rich's console, except that into a pipe or a log a line is printed whole, as ``say_whole``
    prints one: wrapped at rich's 80 columns there, text had broken mid-sentence with a space
    left at the end of each piece, between tables printed at their natural width."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, **options: Any) -> None:
        wrap = not self.is_terminal if soft_wrap is None else soft_wrap
        super().print(*objects, soft_wrap=wrap, **options)


console = LineConsole(highlight=False)
LOG_WIDTH = 160  # columns of a progress line written into a pipe or a log
T = TypeVar("T")


def passing_bar(items: Sequence[T], text: str) -> Iterable[T]:
    """``items`` under a progress bar that goes when done, on a terminal: into a pipe or a file
    the bar would leave a blank line and nothing else."""
    if not console.is_terminal:
        return items
    from rich.progress import track

    return track(items, text, console=console, transient=True)


@contextmanager
def notes_to_stderr(on: bool = True) -> Iterator[None]:
    """The console's lines go to stderr while ``on``: ``run --print-config`` keeps stdout for its
    JSON alone, so that it can be written to a file that ``--config`` reads back."""
    was = console.stderr
    console.stderr = on or was
    try:
        yield
    finally:
        console.stderr = was


def prepare(cfg: TrainConfig) -> tuple[TrainConfig, Any]:
    """``hardware.decide`` for a command: the resolved config and its execution context; a
    device that is not there is a usage error."""
    from benchmark import hardware

    try:
        return hardware.decide(cfg)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def check_layout(archs: Iterable[str], ex: Any) -> None:
    """A usage error for a plug-in encoder that fails in the memory layout ``ex`` trains in
    (``plugin_checks.layout_problem``): before a run directory or a study exists, not at the first
    step in a traceback."""
    from benchmark.plugin_checks import layout_problem

    for arch in dict.fromkeys(archs):
        if problem := layout_problem(arch, ex.channels_last):
            raise UsageError(problem)


def say_probe(configs: list[TrainConfig]) -> None:
    """One line on what a CPU probe chose for ``auto``, with its figures, when one chose: this
    machine's, or another's that a config file (``--config``, a resume) carries with it."""
    probe = next((c.auto_probe for c in configs if c.auto_probe), None)
    if probe is None:
        return
    from benchmark.hardware import way_text

    how = way_text(probe["precision"], probe["channels_last"])
    if not probed_here(probe):
        where = cpu_of(probe["machine"]).removeprefix("cpu: ")
        say(
            f"{how}: as the config says (chosen by the CPU probe of {where} on "
            f"{probe['probed'][:10]}, not of this machine); --precision and --[no-]channels-last "
            f"choose instead"
        )
        return
    figures = ", ".join(f"{k} {v:,.0f}" for k, v in probe["images_per_s"].items())
    say(
        f"auto on this cpu: {how} (probed {probe['probed']}; training images/s {figures}; "
        f"--precision and --[no-]channels-last choose instead)"
    )


def say_emulated(executions: list[Any]) -> None:
    """One line when any of ``executions`` trains in bf16 on a CPU without native bf16 kernels:
    it is emulated there, many times slower than fp32 (a config file or a flag asked for it)."""
    from benchmark.hardware import native_bf16

    if any(ex.device.type == "cpu" and ex.precision == "bf16" for ex in executions):
        if not native_bf16():
            say(
                "bf16 on this CPU is emulated (no AVX-512 BF16 or AMX): expect it to train many "
                "times slower than fp32 (--precision fp32 chooses fp32)"
            )


def probed_here(probe: dict[str, Any]) -> bool:
    """Whether a probe record (a config's ``auto_probe``) measured this machine's CPU (under
    any torch release: the record's key names both), native bf16 or not as this one is: VMs
    name CPUs with and without AVX-512 BF16 alike (``hardware.machine_key``). A record from
    before keys said which (the committed ladder's) is taken by its CPU's name alone."""
    from benchmark import hardware

    theirs, ours = str(probe.get("machine", "")).split(" | "), hardware.machine_key().split(" | ")
    if theirs[0] != ours[0]:
        return False
    bf16 = [key[2] for key in (theirs, ours) if len(key) > 2]
    return len(set(bf16)) <= 1


def cpu_of(machine_key: str) -> str:
    """The CPU a probe's machine key (``hardware.machine_key``: CPU | torch release | bf16)
    names."""
    return machine_key.split(" | ")[0]


class RunsProgress:
    """Runs one after another (a grid, or one run) as a person watches them. Each run prints a
    line as it starts (its label, then its run directory whole, to copy) and one as it ends (time
    and test figures). In a terminal, one live line for the whole sequence: runs done, a bar,
    epoch, loss (or ``validating``, ``testing``), time left and the current run, cut to the
    terminal's width and erased at the end. While a run evaluates, the time left holds still (from
    the training pace it would climb) and goes where less than a second remained: a test split
    of seconds is not "<1 s left". Into a pipe or a log there is no live line; a line per epoch
    says how far it got."""

    def __init__(self, runs: int, steps: int, estimate: float | None = None) -> None:
        self.runs = runs  # how many runs the sequence trains
        self.steps = max(steps, 1)  # optimizer steps still to train, all runs together
        self.estimate = estimate  # seconds, if known before the start
        self.done = 0  # runs finished
        self.trained = 0  # steps trained by finished runs (in this process)
        self.current = 0  # steps trained by the current run (in this process)
        self.label = ""
        self.epoch = ""
        self.loss = ""
        self.held: float | None = None  # the time left when evaluation began, shown during it
        self.evaluating = False
        self.started = time.monotonic()
        self.counted = self.started  # when the steps trained were last counted
        self.live: Any = None

    def __enter__(self) -> RunsProgress:
        if console.is_terminal:
            from rich.live import Live

            self.live = Live(self, console=console, transient=True, refresh_per_second=4)
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def time_left(self) -> float | None:
        """From the pace until the steps were last counted (evaluation pauses included), less
        the time since, or the estimate until then, held: it leaves out start-up, and counted
        down from the start it said "<1 s left" for seconds before the first step. Counted every
        25 steps, a small run's steps stood still for seconds while the time since the start
        grew: "9 s left" climbed."""
        trained = self.trained + self.current
        if trained:
            pace = (self.counted - self.started) / trained
            return max(pace * (self.steps - trained) - (time.monotonic() - self.counted), 0.0)
        return self.estimate

    def __rich_console__(self, _console: Any, options: Any) -> Any:
        """The live line, never wider than the terminal: what does not fit is cut at the end
        (the current run's label, which its start line above shows whole)."""
        from rich.text import Text

        width = options.max_width
        head = f"{self.done}/{self.runs} done " if self.runs > 1 else ""
        left = self.held if self.evaluating else self.time_left()
        tail = f" {self.epoch}{self.loss}" + (f" {duration(left)} left" if left is not None else "")
        room = width - len(head) - len(tail) - 2  # for the bar and the label
        # the label whole if the bar keeps 10 columns (its seed tells a sequence's runs apart),
        # else a bar of 10 and at least 22 columns of label, else no bar
        size = max(min(room - min(len(self.label), 32), 30), min(10, room - 22))
        bar = Text()
        if size >= 10:
            filled = round(size * (self.trained + self.current) / self.steps)
            char = "━" if console.encoding.lower().startswith("utf") else "#"
            bar.append(char * filled, "bold magenta").append(char * (size - filled), "grey30")
        line = Text.assemble(head, bar, tail, "  ", self.label, no_wrap=True, end="")
        line.truncate(width, overflow="ellipsis")
        yield line

    def train(
        self,
        cfg: TrainConfig,
        data: Any,
        run_dir: Path,
        ex: Any,
        label: str,
        state: Any = None,
        note: str = "",
    ) -> dict[str, Any]:
        """``runs.execute`` of one run of the sequence, shown (``label`` says which run, ``note``
        under its directory how it starts, such as where a resumed run goes on from)."""
        from benchmark import runs

        prefix = f"[{self.done + 1}/{self.runs}] " if self.runs > 1 else ""
        say(prefix + label)
        say(f"      {run_dir}", soft_wrap=True)  # whole, even in a narrow terminal: to copy
        if note:
            say(f"      {note}")
        self.label, self.current, self.epoch, self.loss = label, 0, "starting", ""
        first = state.step if state is not None else 0
        begun = time.monotonic()

        def show(event: Any) -> None:
            self.current, self.counted = event.step - first, time.monotonic()
            self.epoch = f"epoch {event.epoch}/{cfg.epochs}"
            self.loss = f" loss {event.loss:.4f}"
            last_step = event.step * cfg.epochs == event.total * event.epoch  # of its epoch
            testing = event.stats is not None and event.epoch == cfg.epochs
            if (last_step and event.stats is None) or testing:
                self.loss = " testing" if testing else " validating"
                if not self.evaluating:
                    left = self.time_left()
                    self.held = left if left is not None and left >= 1 else None
                self.evaluating = True
            else:
                self.evaluating = False
            if event.stats is None:
                return
            if self.live is None:  # a pipe or a log: a line per epoch instead of the live line
                say(
                    f"      epoch {event.epoch}/{cfg.epochs}: loss {event.loss:.4f}, val sum acc "
                    f"{percent(event.stats.val_sum_acc)} ({duration(event.stats.seconds)})"
                    + ("; now the test split" if event.epoch == cfg.epochs else "")
                )

        found = runs.execute(cfg, data, run_dir, ex, state=state, listen=show)
        self.evaluating = False
        self.done += 1
        self.trained += self.current
        self.current = 0
        test = found["test"]
        say(
            f"      done in {duration(time.monotonic() - begun)}: test sum acc "
            f"{percent(test['sum_acc'])}, joint acc {percent(test['joint_acc'])}"
        )
        return found


def say(text: str, soft_wrap: bool | None = None) -> None:
    """A line as typed (no markup: labels hold brackets); whole into a pipe (``LineConsole``)."""
    console.print(text, markup=False, soft_wrap=soft_wrap)


def say_whole(text: str) -> None:
    """A line of words and paths: on a terminal wrapped at spaces, so that a path that fits sits
    whole on a line; left one line into a pipe or log, and where a word (a path, a URL) is
    wider than the terminal, so that rich puts no newline inside it. Left one line everywhere,
    such lines were cut by the terminal mid-word ("outpu" / "t/plots/")."""
    long = any(len(word) > console.width for word in text.split())
    say(text, soft_wrap=long or not console.is_terminal)


def run_label(
    cfg: TrainConfig, fields: tuple[str, ...] = (), model_args: dict[str, Any] | None = None
) -> str:
    """``gap_cnn x concat, lr=0.003, width=8, seed 1``: the combination, the given fields and
    model arguments (what a sweep varies) and the seed."""
    shown = [(name, getattr(cfg, name)) for name in fields] + list((model_args or {}).items())
    values = ", ".join(f"{name}={show_value(value)}" for name, value in shown)
    return f"{cfg.arch} x {cfg.fusion}" + (f", {values}" if values else "") + f", seed {cfg.seed}"


def show_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def train_with_progress(
    cfg: TrainConfig,
    data: Any,
    run_dir: Path,
    ex: Any,
    state: Any = None,
    label: str | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One run shown as ``RunsProgress`` shows a sequence of one, headed by ``label`` (a
    caller's name for it in a larger sequence) or by its arch, fusion and seed."""
    label = label or run_label(cfg)
    steps = cfg.steps_per_epoch(len(data.train)) * cfg.epochs
    with RunsProgress(1, steps - (state.step if state is not None else 0)) as shown:
        return shown.train(cfg, data, run_dir, ex, label, state, note)


FOLD = {"subsequent_indent": " " * 6, "break_long_words": False, "break_on_hyphens": False}


def describe_trial(t: Any) -> str:
    """One line per finished trial: state, value or why not, time, parameters. A trial stopped
    before training (``trials.rejected``) says so, though Optuna stores it as pruned."""
    from optuna.trial import TrialState

    state = "rejected" if rejected(t) else t.state.name.lower()
    if t.state == TrialState.COMPLETE:
        result = f"val joint acc {percent(t.value)}"
    elif t.user_attrs.get("over_cap"):
        result = f"{t.user_attrs['params']:,} parameters, over the cap (not counted)"
    elif t.user_attrs.get("duplicate"):
        result = "a second copy of the defaults trial (not counted)"
    elif t.user_attrs.get("surplus"):
        result = "the study's trials were all held by other workers (not counted)"
    elif t.user_attrs.get("diverged"):
        result = f"diverged: {t.user_attrs['diverged']}"
    elif t.intermediate_values:
        epoch = max(t.intermediate_values)
        result = f"val joint acc {percent(t.intermediate_values[epoch])} at epoch {epoch}"
    else:
        result = "no epoch finished"
    took = duration(t.duration.total_seconds()) if t.duration else "time unknown"
    return f"trial {t.number} {state}: {result} ({took}) {settings(t.params)}"


def study_bar() -> Any:
    """The progress display of ``StudyProgress``: label, a short bar, trials done of total, time
    left (once done, the time taken), the best value and what was pruned, failed or rejected
    (cut at its end where the terminal is narrow); fits in 80 columns. Into a pipe or a log,
    where rich would cut it at 80 columns (through the counts), it is printed whole."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column
    from rich.text import Text

    class StatsColumn(ProgressColumn):
        """The study's counts, cut at the end where the terminal is narrow (the table squeezed
        the time to "00…" and wrapped it, and the bar, onto a second line)."""

        def render(self, task: Any) -> Text:
            return Text(task.fields["stats"], no_wrap=True, overflow="ellipsis")

    class StudyTimeColumn(TimeRemainingColumn):
        """Time left while the study runs, time taken once done, each saying which (one column
        changed meaning without a word); nothing for a study done before this process: a
        replay's 00:00 read as a study that took no time (its stats say "done earlier")."""

        def render(self, task: Any) -> Text:
            if task.fields.get("earlier"):
                return Text("")
            shown = super().render(task)
            return Text.assemble(
                "took " if task.finished else "", shown, "" if task.finished else " left"
            )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=8),
        MofNCompleteColumn(),
        StudyTimeColumn(
            compact=True, elapsed_when_finished=True, table_column=Column(no_wrap=True)
        ),
        StatsColumn(),
        console=console
        if console.is_terminal
        else Console(file=console.file, width=LOG_WIDTH, highlight=False),
    )


class StudyProgress:
    """A study's trial counts and best value on a ``study_bar``, and one line per finished trial
    (a progress display; experiment trackers are ``benchmark.trackers``)."""

    def __init__(self, bar: Any, study: Any, label: str, trials: int) -> None:
        self.bar = bar
        self.study = study
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.label = label
        self.earlier = self.finished() >= trials  # done before this process: a replay
        self.task = bar.add_task(label, total=trials, stats="", earlier=self.earlier)
        self.elsewhere = 0  # trials this worker waits for, running on others (until shown)
        self.refresh()

    def finished(self) -> int:
        """The trials that count towards the study's total (rejected ones do not)."""
        from benchmark import tuning

        return tuning.finished_count(self.study)

    def waiting(self, elsewhere: int) -> None:
        """The last trials run on other workers: say so until the next refresh."""
        self.elsewhere = elsewhere
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Re-read the study (other processes write to it too); usable as an Optuna callback."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        counts = Counter(t.state for t in trials if not rejected(t))  # the trials that count
        for t in trials:
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                # one line each, whole in a log; in a terminal folded between settings, indented
                # (the terminal broke a line of 200-270 characters mid-setting); parameters as
                # text; the combination named, since a log has the study's bar only after them
                line = f"  {self.label} {describe_trial(t)}"
                if (screen := self.bar.console).is_terminal:
                    line = textwrap.fill(line, screen.width, **FOLD)
                screen.print(line, soft_wrap=True, markup=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = max(complete, key=lambda t: t.value, default=None)
        stats = [f"best joint {percent(best.value)} (trial {best.number})" if best else "best -"]
        stats += [f"{counts[TrialState.PRUNED]} pruned", f"{counts[TrialState.FAIL]} failed"]
        stats.append(f"{sum(rejected(t) for t in trials)} rejected")  # numbered, not counted
        if self.earlier:
            stats.append("done earlier")
        if self.elsewhere:
            stats.append(f"waiting for {self.elsewhere} running elsewhere")
            self.elsewhere = 0
        self.bar.update(
            self.task,
            completed=self.finished(),
            stats=", ".join(x for x in stats if not x.startswith("0 ")),
        )
