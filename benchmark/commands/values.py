"""What a flag's text becomes: paths, comma lists, ``KEY=VALUE`` model arguments, enumerated
choices; each refuses bad text with an ``argparse`` error that names what is accepted."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from benchmark.config import seed_problem
from benchmark.errors import DamagedFileError


def path_text(text: str) -> str:
    """A path flag's value; an empty one is refused, since as a path it is the current folder
    (``--results-dir ''`` wrote runs/ there) and as an option it read as not given."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; expected a path")
    return text


def processes(text: str) -> int:
    """A count of processes a command starts: at most 4 per core (40 tune workers on 2 cores
    took 14 GB and finished no trial in 2 min; more measure the machine's thrashing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value > (most := 4 * (os.cpu_count() or 1)):
        raise argparse.ArgumentTypeError(f"must be <= {most} (4 per core here), got {value}")
    return value


def items_of(text: str, expected: str) -> list[str]:
    """``comma_items`` for a flag: an empty list, or an empty item, refused naming what is
    accepted."""
    from architectures.registry import comma_items  # here: importing architectures loads torch

    try:
        items = comma_items(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; expected {expected}") from None
    if not items:
        raise argparse.ArgumentTypeError(f"{text!r} is empty; expected {expected}")
    return items


def int_list(text: str, example: str = "0,1,2") -> list[int]:
    """A comma list of integers, each once in the order first given (``0,1,0`` is ``0,1``: a
    seed twice would train one run twice, and make another protocol of the same runs)."""
    expected = f"comma-separated integers such as {example}"
    try:
        return list(dict.fromkeys(int(x) for x in items_of(text, expected)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid list {text!r}; expected {expected}") from None


def budget_list(text: str) -> list[int]:
    """``int_list`` of epoch budgets (a ladder's rungs), each a positive integer."""
    budgets = int_list(text, "1,3,9")
    if min(budgets) < 1:
        raise argparse.ArgumentTypeError(
            f"each budget must be a positive integer, such as 1,3,9; got {text!r}"
        )
    return budgets


def seed_list(text: str) -> list[int]:
    """``int_list`` of seeds, each in the range a run's config takes (said as ``--seeds``'s)."""
    seeds = int_list(text)
    if problem := next(filter(None, map(seed_problem, seeds)), None):
        raise argparse.ArgumentTypeError(f"each seed {problem}")
    return seeds


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


def is_list_text(value: Any) -> bool:
    """A ``--model-arg`` value typed as a comma list (``width=8,16``): ``run`` and ``bench``
    sweep it, the other commands refuse it."""
    return isinstance(value, str) and "," in value


def one_key_value(command: str) -> Callable[[str], tuple[str, Any]]:
    """``key_value`` for a command that takes one value per model argument: a comma list,
    which ``run`` sweeps, is refused naming where it works."""

    def parse(text: str) -> tuple[str, Any]:
        key, value = key_value(text)
        if is_list_text(value):
            raise argparse.ArgumentTypeError(
                f"{text!r}: {command} takes one value per model argument (run sweeps a comma list)"
            )
        return key, value

    parse.__name__ = "KEY=VALUE"
    return parse


SWEEPS = (" run", " bench")  # the commands where a comma list of a model argument is a sweep


class AppendOnce(argparse.Action):
    """``action="append"`` of (key, value) pairs that refuses a key given twice: with
    ``--model-arg width=8 --model-arg width=16`` the last won without a word."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: Any = None) -> None:
        pairs = [*(getattr(namespace, self.dest) or []), value]
        if (key := value[0]) in dict(pairs[:-1]):
            values = [str(v) for k, v in pairs if k == key]
            given = " and ".join(f"{key}={v}" for v in values)
            sweep = (
                f", or sweep it as {key}={','.join(values)}" if parser.prog.endswith(SWEEPS) else ""
            )
            parser.error(f"{option} {key} given twice ({given}); give it once{sweep}")
        setattr(namespace, self.dest, pairs)


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


def list_of(parse: Callable[[str], Any], path: bool = False) -> Callable[[str], list[Any]]:
    """An argparse type for a comma list of values, each parsed (and checked) by ``parse``. With
    ``path``, a text that names an existing directory whole is that one path, comma and all (a
    folder named ``mn,ist`` is not a sweep of ``mn`` and ``ist``)."""

    def convert(text: str) -> list[Any]:
        if path and "," in text and Path(text).is_dir():
            return [parse(text)]
        items = items_of(text, "a value or a comma list")
        values = []
        for item in items:
            try:
                values.append(parse(item))
            except ValueError:
                if len(items) == 1:  # argparse's own words, as for a flag of one value
                    raise
                kinds = {"int": "an integer", "float": "a number"}
                kind = kinds.get(convert.__name__, "a valid value")
                raise argparse.ArgumentTypeError(  # argparse quoted the whole list
                    f"invalid item {item!r} in {text!r}; expected {kind}"
                ) from None
        return values

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def add_model_arg_flag(
    parser: argparse.ArgumentParser, held: bool = False, sweeps: bool = False
) -> None:
    """``--model-arg KEY=VALUE``; ``held``: for the commands that tune, which hold it fixed;
    ``sweeps``: for ``run``, where a comma list is a sweep axis."""
    what = (
        "encoder/fusion hyperparameter held fixed in every trial: one no search tunes, such as "
        "a timm ViT's img_size=28 (repeatable)"
        if held
        else "encoder/fusion hyperparameter override, e.g. width=32 or a timm ViT's img_size=28 "
        "(repeatable"
        + (
            "; in a grid, for the combinations that take it; a comma list, width=8,16, sweeps it)"
            if sweeps
            else "; one value each)"  # datapath: one model
        )
    )
    parse = key_value if sweeps else one_key_value(parser.prog.split()[-1])
    parser.add_argument(
        "--model-arg", type=parse, action=AppendOnce, metavar="KEY=VALUE", help=what
    )


class RecordedFlags(argparse.ArgumentParser):
    """A parser whose refusal is an exception, not argparse's usage dump and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def parse_recorded(
    add_parser: Callable[[Any], None], argv: list[str], where: Path
) -> argparse.Namespace:
    """``argv`` as a command's ``add_parser`` parses it, where ``argv`` holds the flags a file
    (``where``, a comparison.json) recorded: a hand-edited plan (no seeds, -1 epochs) gave
    flags argparse refused with its usage and exit 2, as though the user had typed them; it
    is the file's damage, named in one line."""
    parser = RecordedFlags()
    add_parser(parser.add_subparsers())
    try:
        return parser.parse_args(argv)
    except ValueError as exc:
        refused = f"its plans give flags that are refused ({exc})"
        raise DamagedFileError(f"{where}: {refused}; repair it or move it away") from None
