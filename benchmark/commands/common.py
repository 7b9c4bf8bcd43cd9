"""Plumbing shared by the commands: the console, exit statuses, signal handling and the flag
builders (training settings come from ``TrainConfig`` so that every command spells them alike).

Only light imports here: ``--help`` of any command must not load torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import os
import signal
import subprocess
import sys
import time
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmark.commands.values import list_of, one_of, optional, path_text
from benchmark.config import TrainConfig, field_types, fields_of, flag_name
from benchmark.errors import DamagedFileError, UsageError
from benchmark.files import nearest_existing, parse_json
from benchmark.places import STORAGE_ENV
from benchmark.progress import console, say_whole
from benchmark.wording import SAME_CONFIG, percent

# Where a user's runs, studies and reports go by default; the committed reference figures live in
# results/ and change only when a command names it (--results-dir results).
OUTPUT = "output"
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

__all__ = ["UsageError", "console"]


class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an interrupt, so the same clean-up path serves both signals."""


_stopping: list[int] = []  # the signal that is stopping this process, once one came
_depth = [0]  # interrupts_as_exceptions blocks open (they nest: cli.main's holds a command's)


def _stop(signum: int, frame: Any) -> None:
    if _stopping:  # a second Ctrl-C (or one held down): the first one's clean-up goes on
        return
    _stopping.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


class _StderrUnlessStopping(logging.StreamHandler):
    """SQLAlchemy's warnings and errors to stderr as Python's last-resort handler prints them,
    except while this process stops on a signal: an interrupt raised inside a query makes its
    pool log "Error closing cursor" with two tracebacks, noise beside the one line that says
    the process was stopped (seen in one of sixteen GPU workers stopped by SIGTERM)."""

    @property
    def stream(self) -> Any:  # stderr at the time of writing, as pytest or a caller set it
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass

    def filter(self, record: logging.LogRecord) -> bool:
        return not _stopping and bool(super().filter(record))


def _quiet_sqlalchemy_while_stopping() -> None:
    logger = logging.getLogger("sqlalchemy")
    if not any(isinstance(h, _StderrUnlessStopping) for h in logger.handlers):
        logger.addHandler(_StderrUnlessStopping(logging.WARNING))


@contextmanager
def interrupts_as_exceptions(restore: bool = True) -> Iterator[None]:
    """The first SIGINT raises KeyboardInterrupt and the first SIGTERM ``Terminated`` (one too),
    so one clean-up path serves both; every later signal is ignored, so the clean-up (status
    "interrupted", the resume hint, the exit line) is never cut short by a traceback. A SIGINT
    ignored from the start (a background job of a script) stays ignored.

    The handlers are restored when the outermost block ends; with ``restore=False`` (the
    process's entry point) they stay, ignoring everything, while the interpreter shuts down."""
    _quiet_sqlalchemy_while_stopping()
    watched = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        watched.append(signal.SIGINT)
    previous = {s: signal.signal(s, _stop) for s in watched}
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if not restore:  # the process is ending: nothing more to interrupt. SIG_IGN, as the
            for sig in watched:  # interpreter's exit resets its own handlers to the default
                signal.signal(sig, signal.SIG_IGN)  # (which would end it by the signal)
        elif _depth[0] == 0:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            _stopping.clear()


# ------------------------------------------------------------------------------ checks


def require_at_least(values: Iterable[tuple[str, float | None, float]]) -> None:
    """``(flag, value, lowest)`` triples: a value below its lowest is a usage error, said as
    config.py and ``run`` say it for a count (lowest 1): "a positive integer"."""
    for flag, value, low in values:
        if value is not None and value < low:
            taken = "a positive integer" if low == 1 and isinstance(value, int) else f">= {low}"
            raise UsageError(f"{flag} must be {taken}, got {value}")


def check_data_dir(data_dir: str | None) -> None:
    """``--data-dir`` (or a config's data_dir), else ``$MNIST_ROOT``, is, or can become, a
    directory: a file there would be looked in for MNIST/raw/ and then downloaded into, and fail
    as missing data."""
    from benchmark import data

    given = f"--data-dir {data_dir}"
    if data_dir is None:  # $MNIST_ROOT as a file was looked in, downloaded into, "not found"
        data_dir = os.environ.get("MNIST_ROOT")
        given = f"MNIST_ROOT={data_dir}"
        if not data_dir or any(not data.missing_files(r) for r in data.candidate_roots()):
            return  # a stale one is passed over where ./data holds MNIST
    existing = nearest_existing(Path(data_dir))
    if not existing.is_dir():
        raise UsageError(
            f"{given}: {existing} is a file; expected the MNIST root, a directory "
            f"holding MNIST/raw/ (or one to download into)"
        )


# ------------------------------------------------------------------------------ flag builders


# Config fields with dedicated flags (lists, grids) or none (what the program records).
SPECIAL_FIELDS = frozenset(fields_of("name", "model", "seed", "record"))


def config_fields(skip: Iterable[str] = ()) -> list[dataclasses.Field[Any]]:
    skipped = SPECIAL_FIELDS | set(skip)
    return [f for f in dataclasses.fields(TrainConfig) if f.name not in skipped]


def add_config_flags(
    parser: argparse.ArgumentParser,
    skip: Iterable[str] = (),
    title: str = "training config (defaults in brackets)",
    sweep: bool = False,
) -> None:
    """One flag per ``TrainConfig`` field (``--batch-size``, ``--no-augment`` ...), with the
    field's one-line description and choices; default None, so that only what the user typed
    overrides the config (or the resumed/tuned one). With ``sweep``, every non-boolean flag takes
    a comma list (a list value), which ``run`` expands into its grid."""
    hints = field_types()
    defaults = TrainConfig()
    group = parser.add_argument_group(title)
    for f in config_fields(skip):
        hint = hints[f.name]
        args = typing.get_args(hint)
        is_optional = isinstance(hint, types.UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if is_optional else hint
        flag = flag_name(f.name)
        default = getattr(defaults, f.name)  # None: the help says what unset means ("[None]")
        shown = "" if default is None else f" [{default}]"
        helptext = f"{f.metadata.get('help', '')}{shown}".strip()
        choices = f.metadata.get("choices")
        listed = sweep and f.metadata.get("sweep", True)
        if base is bool:
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=helptext
            )
        elif choices:
            group.add_argument(
                flag,
                type=list_of(one_of(choices)) if listed else one_of(choices),
                default=None,
                metavar="{" + ",".join(choices) + "}" + ("[,...]" if listed else ""),  # a sweep
                help=helptext,
            )
        else:
            cast = optional(base) if is_optional else base
            word = "DIR" if f.metadata.get("path") else base.__name__.upper()  # not "STR"
            metavar = word + (f"[,{word}...]" if listed else "")
            group.add_argument(
                flag,
                type=list_of(cast, path=f.metadata.get("path", False)) if listed else cast,
                default=None,
                metavar=metavar,
                help=helptext,
            )


def config_overrides(args: argparse.Namespace, skip: Iterable[str] = ()) -> dict[str, Any]:
    """The ``TrainConfig`` fields the user typed (flags left at None are not overrides)."""
    names = {f.name for f in config_fields(skip)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def add_config_file_flags(parser: argparse.ArgumentParser, print_flag: bool = True) -> None:
    parser.add_argument(
        "--config",
        type=path_text,
        metavar="FILE",
        help="start from this config (JSON, e.g. a run's config.json, or TOML); flags typed "
        "on the command line override it",
    )
    if print_flag:
        parser.add_argument(
            "--print-config",
            action="store_true",
            help="print the config as JSON (precision and layout before the CPU probe resolves "
            "them) and exit, training and writing nothing",
        )


def read_config_file(path: str) -> dict[str, Any]:
    """A config file's fields: a JSON or TOML object of ``TrainConfig`` fields."""

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc  # not the path again
        raise UsageError(f"--config {path}: cannot read it ({why})") from None
    try:
        if path.endswith(".toml"):
            import tomllib

            values: Any = parse_json(text, tomllib.loads)
        else:
            values = parse_json(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        kind = "TOML" if path.endswith(".toml") else "JSON"
        takes = "" if path.endswith((".toml", ".json")) else "; --config takes .json or .toml"
        raise UsageError(f"--config {path}: not valid {kind} ({exc}){takes}") from None
    if not isinstance(values, dict):
        raise UsageError(f"--config {path}: expected an object of config fields")
    return values


def base_config(args: argparse.Namespace, skip: Iterable[str] = ()) -> TrainConfig:
    """``--config FILE`` (if given), then the config flags typed, then ``--model-arg``s on top of
    the file's model_args: the configuration every command that trains starts from."""
    in_file = read_config_file(args.config) if getattr(args, "config", None) else {}
    if in_file.get("plugins"):  # a run's config.json: the plug-ins its model came from
        from benchmark import plugins

        try:
            plugins.load_recorded(in_file, f"--config {args.config}")
        except DamagedFileError as exc:  # a file given is input: bad fields are usage errors
            raise UsageError(str(exc)) from None
    values = {**in_file, **(typed := config_overrides(args, skip))}
    typed_args = dict(getattr(args, "model_arg", None) or [])
    try:
        given = values.get("model_args", {})
        if not isinstance(given, dict):
            raise ValueError(f"model_args must be of type dict, got {given!r}")
        values["model_args"] = {**given, **typed_args}
        cfg = TrainConfig.from_dict(values)
        cfg.check_types()  # here, naming the file: a name that is no string is looked up next
        cfg = cfg.with_floats()  # a file's 15 for 15.0: the run a flag would give, one hash
        if in_file:  # an impossible value of the file's own, said with the file's name
            try:
                cfg.validate()  # a flag typed beside the file may make its values fit
            except ValueError:  # else: a clash with a flag, said later
                TrainConfig.from_dict(
                    {k: v for k, v in in_file.items() if k not in typed}
                ).validate()
        return cfg
    except (TypeError, ValueError) as exc:
        if getattr(args, "config", None):
            raise UsageError(f"--config {args.config}: {exc}") from None
        raise UsageError(TrainConfig.in_flag_words(str(exc))) from None


def only_fields(*names: str) -> tuple[str, ...]:
    """The ``skip`` of ``add_config_flags``/``base_config`` that keeps just ``names``: how the
    measuring commands (``bench``, ``datapath``) take their settings through the same flags and
    config as ``run``."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in names)


def add_plugin_flag(
    parser: argparse.ArgumentParser, command: Callable[[argparse.Namespace], int]
) -> None:
    """``--plugin`` (repeatable), and ``command`` as the parser's function, run once the
    installed and the named plug-ins are loaded: before any architecture name is resolved, and
    a bad plug-in is one line and exit status 2 before anything is written."""
    import functools

    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="load encoders and fusions from a plug-in: a dotted module name on sys.path or a "
        ".py file (repeatable); installed plug-ins (entry-point group digitsum_bench.plugins) "
        "load without it. See docs/plugins.md",
    )

    @functools.wraps(command)
    def with_plugins(args: argparse.Namespace) -> int:
        from benchmark import plugins

        plugins.load_all(args.plugin)
        return command(args)

    parser.set_defaults(func=with_plugins)


def add_results_dir_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--results-dir", type=path_text, default=OUTPUT, metavar="DIR", help=f"{what} [{OUTPUT}]"
    )


# ------------------------------------------------------------------------------ output


def natural_width(table: Any) -> int:
    """The columns ``table`` takes when nothing squeezes it."""
    return console.measure(table, options=console.options.update_width(10_000)).maximum


def print_wide(table: Any) -> None:
    """Into a pipe or log, print at the table's natural width rather than rich's default 80
    columns, which would elide the numbers, and with no spaces at the ends of its lines; a
    terminal keeps its own width, and a table wider than it folds its cells rather than cut
    them ("206,9…", a file name lost to "/tmp/…"). A title wider than the table is a line of
    its own: the table's width cut it mid-phrase."""
    natural = natural_width(table)  # of its columns: the title takes none of it
    if table.title and len(str(table.title)) > natural:
        title, table.title = table.title, None
        say_whole(str(title))  # a path in it stays whole
    if console.is_terminal:
        if natural > console.width:
            for column in table.columns:  # no_wrap would cut them short without a mark
                column.no_wrap, column.overflow = False, "fold"
        console.print(table)
        return
    text = io.StringIO()  # its lines ended in the spaces that pad the rows to the table's width
    Console(file=text, width=max(console.width, natural), highlight=False).print(table)
    console.file.write("".join(line.rstrip() + "\n" for line in text.getvalue().splitlines()))


WORKERS_POLL_S = 2.0  # how often the parent refreshes the progress while worker processes run


def exit_reason(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def run_workers(commands: list[list[str]], storage: str, refresh: Any) -> list[str]:
    """Start the worker processes, refresh the progress until all exit; what went wrong, by
    worker. An interrupt here stops the workers (SIGTERM fails their running trials)."""
    env = {**os.environ, STORAGE_ENV: storage}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL) for cmd in commands]
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(WORKERS_POLL_S)
            refresh()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    refresh()
    return [
        f"worker {i} (pid {p.pid}) {exit_reason(p.returncode)}"
        for i, p in enumerate(procs, start=1)
        if p.returncode
    ]


def add_tuned_flags(parser: argparse.ArgumentParser, does: str) -> None:
    """``--tuned``, ``--tuned-study`` and ``--tuned-any-budget``: ``does`` what (train, measure)
    with the parameters ``tune`` exported, as ``run`` and ``bench`` both take them."""
    parser.add_argument(
        "--tuned",
        action="store_true",
        help=f"{does} with the parameters `tune` exported for each arch x fusion at this budget",
    )
    parser.add_argument(
        "--tuned-study",
        metavar="NAME",
        help="with --tuned: use this study's export (e.g. one tuned at another budget)",
    )
    parser.add_argument(
        "--tuned-any-budget",
        action="store_true",
        help="with --tuned: accept the one export of a pair although tuned at another budget",
    )


def apply_tuned_flags(
    args: argparse.Namespace, configs: list[TrainConfig], typed: Iterable[str]
) -> list[TrainConfig]:
    """``configs`` with ``--tuned``'s exported parameters, except the ``typed`` fields (and the
    ``--model-arg``s each config holds), saying once per study which trial they come from;
    ``configs`` unchanged without ``--tuned``."""
    if not args.tuned:
        if args.tuned_study or args.tuned_any_budget:
            flag = "--tuned-study" if args.tuned_study else "--tuned-any-budget"
            raise UsageError(f"{flag} chooses the export --tuned uses; give --tuned too")
        return configs
    from benchmark import exports  # optuna only when asked for

    typed, results_dir = list(typed), Path(args.results_dir)
    configs = [
        exports.apply_tuned(cfg, typed, results_dir, args.tuned_study, args.tuned_any_budget)
        for cfg in configs
    ]
    for line in dict.fromkeys(  # once per study, however many seeds or sweeps take it
        f"{cfg.arch} x {cfg.fusion}: tuned parameters of study {cfg.tuned_from['study']} "
        f"(trial {cfg.tuned_from['trial']}, val joint acc {percent(cfg.tuned_from['value'])})"
        + (
            f": its defaults trial, so this is the default configuration (the report "
            f'marks the group "{SAME_CONFIG}")'
            if cfg.tuned_from.get("defaults")
            else ""
        )
        for cfg in configs
    ):
        console.print(line)
    return configs
