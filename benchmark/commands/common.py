"""Plumbing shared by the commands: the console, exit statuses, signal handling and the flag
builders (training settings come from ``TrainConfig`` so that every command spells them alike).

Only light imports here: ``--help`` of any command must not load torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from benchmark.config import DEVICES, PRECISIONS, TrainConfig, fields_of
from benchmark.errors import UsageError

console = Console(highlight=False)
# Where a user's runs, studies and reports go by default; the committed reference figures live in
# results/ and change only when a command names it (--results-dir results).
OUTPUT = "output"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

__all__ = ["UsageError", "console"]


class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an interrupt, so the same clean-up path serves both signals."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` (a KeyboardInterrupt) for the duration of the block."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------ flag values


def int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid seed list {text!r}; expected comma-separated integers such as 0,1,2"
        ) from None


def parse_value(text: str) -> Any:
    """A model-argument value: int, float, bool or None if it reads as one, else the string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), parse_value(value.strip())


def optional(cast: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        return None if text.lower() == "none" else cast(text)

    convert.__name__ = cast.__name__
    return convert


def one_of(choices: Iterable[str]) -> Callable[[str], str]:
    """An argparse type for an enumerated field whose error names what is accepted."""
    accepted = tuple(choices)

    def parse(text: str) -> str:
        if text not in accepted:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not accepted; expected one of {', '.join(accepted)}"
            )
        return text

    return parse


def require_at_least(values: Iterable[tuple[str, float | None, float]]) -> None:
    """``(flag, value, lowest)`` triples: a value below its lowest is a usage error."""
    for flag, value, low in values:
        if value is not None and value < low:
            raise UsageError(f"{flag} must be >= {low}, got {value}")


# ------------------------------------------------------------------------------ flag builders


# Config fields with dedicated flags (lists, grids) or none (what the program records).
SPECIAL_FIELDS = frozenset(fields_of("name", "model", "seed", "record"))


def config_fields(skip: Iterable[str] = ()) -> list[dataclasses.Field[Any]]:
    skipped = SPECIAL_FIELDS | set(skip)
    return [f for f in dataclasses.fields(TrainConfig) if f.name not in skipped]


def list_of(parse: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """An argparse type for a comma list of values, each parsed (and checked) by ``parse``."""

    def convert(text: str) -> list[Any]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r} is empty; expected a value or a comma list")
        return [parse(x) for x in items]

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


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
    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    group = parser.add_argument_group(title)
    for f in config_fields(skip):
        hint = hints[f.name]
        args = typing.get_args(hint)
        is_optional = isinstance(hint, types.UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if is_optional else hint
        flag = "--" + f.name.replace("_", "-")
        helptext = f"{f.metadata.get('help', '')} [{getattr(defaults, f.name)}]".strip()
        choices = f.metadata.get("choices")
        if base is bool:
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=helptext
            )
        elif choices:
            group.add_argument(
                flag,
                type=list_of(one_of(choices)) if sweep else one_of(choices),
                default=None,
                metavar="{" + ",".join(choices) + "}",
                help=helptext,
            )
        else:
            cast = optional(base) if is_optional else base
            metavar = base.__name__.upper() + (f"[,{base.__name__.upper()}...]" if sweep else "")
            group.add_argument(
                flag,
                type=list_of(cast) if sweep else cast,
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
        metavar="FILE",
        help="start from this config (JSON, e.g. a run's config.json, or TOML); flags typed "
        "on the command line override it",
    )
    if print_flag:
        parser.add_argument(
            "--print-config",
            action="store_true",
            help="print the resolved config as JSON and exit, training and writing nothing",
        )


def read_config_file(path: str) -> dict[str, Any]:
    """A config file's fields: a JSON or TOML object of ``TrainConfig`` fields."""
    import json

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: cannot read it ({exc})") from None
    try:
        if path.endswith(".toml"):
            import tomllib

            values: Any = tomllib.loads(text)
        else:
            values = json.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        kind = "TOML" if path.endswith(".toml") else "JSON"
        raise UsageError(f"--config {path}: not valid {kind} ({exc})") from None
    if not isinstance(values, dict):
        raise UsageError(f"--config {path}: expected an object of config fields")
    return values


def base_config(args: argparse.Namespace, skip: Iterable[str] = ()) -> TrainConfig:
    """``--config FILE`` (if given), then the config flags typed, then ``--model-arg``s on top of
    the file's model_args: the configuration every command that trains starts from."""
    values = read_config_file(args.config) if getattr(args, "config", None) else {}
    values = {**values, **config_overrides(args, skip)}
    typed_args = dict(getattr(args, "model_arg", None) or [])
    try:
        values["model_args"] = {**values.get("model_args", {}), **typed_args}
        return TrainConfig.from_dict(values)
    except (TypeError, ValueError) as exc:
        where = f"--config {args.config}: " if getattr(args, "config", None) else ""
        raise UsageError(f"{where}{exc}") from None


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision`` for the measuring commands, worded as in ``run``."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name, choices in (("device", DEVICES), ("precision", PRECISIONS)):
        parser.add_argument(
            f"--{name}",
            choices=choices,
            default="auto",
            help=f"{fields[name].metadata['help']} [auto]",
        )


def add_results_dir_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--results-dir", default=OUTPUT, metavar="DIR", help=f"{what} [{OUTPUT}]")


# ------------------------------------------------------------------------------ output


def print_wide(table: Any) -> None:
    """Into a pipe or log, print at the table's natural width rather than rich's default 80
    columns, which would elide the numbers; a terminal keeps its own width."""
    if console.is_terminal:
        console.print(table)
        return
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    Console(file=console.file, width=max(console.width, natural), highlight=False).print(table)


def progress(*columns: Any) -> Any:
    """A rich progress display: description, bar, done/total, the given columns, elapsed and
    remaining time."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
